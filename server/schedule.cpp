// Parsing cron expressions into bit sets, and the search for ticks over them.
//
// DESIGN. A schedule is five bit sets (minutes, hours, days of the month,
// months, weekdays). The search walks days, not minutes: a month left out is
// skipped whole, a day that does not match costs one step, and within a
// matching day the hour and minute come from the first (or last) set bit.
// The Gregorian calendar, weekdays included, repeats every 400 years
// (146,097 days, exactly 20,871 weeks), so a search that finds nothing in as
// many day steps never will; fires() answers that question at once, from
// the bit sets, for the only expressions it can happen to (a restricted day
// of the month that no month chosen has).
#include "server/schedule.hpp"

#include <algorithm>
#include <array>
#include <bit>
#include <cctype>
#include <charconv>
#include <span>

namespace luad::server {

namespace {

namespace chr = std::chrono;

// A field of the expression: its name in messages, its range, and the names
// it accepts (values name_base, name_base + 1, ...).
struct field_spec {
  std::string_view name;
  int lo;
  int hi;
  std::span<const std::string_view> names;
  int name_base;
};

constexpr std::string_view k_month_names[] = {"jan", "feb", "mar", "apr", "may", "jun",
                                              "jul", "aug", "sep", "oct", "nov", "dec"};
constexpr std::string_view k_day_names[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};

// Day-of-week takes 0-7 (7 is Sunday again; folded into bit 0 after parsing).
const field_spec k_fields[] = {
    {"minute", 0, 59, {}, 0},
    {"hour", 0, 23, {}, 0},
    {"day-of-month", 1, 31, {}, 0},
    {"month", 1, 12, k_month_names, 1},
    {"day-of-week", 0, 7, k_day_names, 0},
};

constexpr std::pair<std::string_view, std::string_view> k_macros[] = {
    {"@yearly", "0 0 1 1 *"}, {"@annually", "0 0 1 1 *"}, {"@monthly", "0 0 1 * *"},
    {"@weekly", "0 0 * * 0"}, {"@daily", "0 0 * * *"},    {"@midnight", "0 0 * * *"},
    {"@hourly", "0 * * * *"},
};

// One cycle of the Gregorian calendar in days: the bound of every search.
constexpr int k_cycle_days = 146'097;
constexpr int k_last_minute = 24 * 60 - 1;

runtime::error why(std::string message) {
  return runtime::fail(runtime::error_kind::invalid, std::move(message));
}

std::string range_text(const field_spec& f) {
  return std::to_string(f.lo) + "-" + std::to_string(f.hi);
}

bool same_letters(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == y;
         });
}

// A number in the field's range, or one of its names.
runtime::result<int> read_value(std::string_view token, const field_spec& f) {
  int v = 0;
  auto [end, ec] = std::from_chars(token.data(), token.data() + token.size(), v);
  bool digits = !token.empty() && std::isdigit(static_cast<unsigned char>(token[0]));
  if (digits && end == token.data() + token.size()) {
    if (ec == std::errc() && v >= f.lo && v <= f.hi) return v;
    return why(std::string(token) + " is out of range " + range_text(f));
  }
  for (std::size_t i = 0; i < f.names.size(); ++i)
    if (same_letters(token, f.names[i])) return f.name_base + static_cast<int>(i);
  if (f.names.empty()) return why("'" + std::string(token) + "' is not a number");
  return why("'" + std::string(token) + "' is not a number or a name (" +
             std::string(f.names.front()) + ".." + std::string(f.names.back()) + ")");
}

// The step after '/': 1 up to the width of the field's range.
runtime::result<int> read_step(std::string_view token, const field_spec& f) {
  int v = 0;
  auto [end, ec] = std::from_chars(token.data(), token.data() + token.size(), v);
  if (token.empty() || !std::isdigit(static_cast<unsigned char>(token[0])) ||
      end != token.data() + token.size())
    return why("step '" + std::string(token) + "' is not a number");
  if (ec == std::errc() && v == 0) return why("step 0");
  if (ec != std::errc() || v > f.hi - f.lo + 1)
    return why("step " + std::string(token) + " is larger than the range " + range_text(f));
  return v;
}

// One list item: `*`, `a`, `a-b`, `*/n` or `a-b/n`, as a bit set.
runtime::result<std::uint64_t> read_item(std::string_view item, const field_spec& f) {
  if (item.empty()) return why("empty list item");
  std::size_t slash = item.find('/');
  std::string_view span = item.substr(0, slash);
  int lo = f.lo;
  int hi = f.hi;
  if (span.empty()) return why("'" + std::string(item) + "': no value before '/'");
  if (span != "*") {
    std::size_t dash = span.find('-');
    if (dash == 0 || dash + 1 == span.size())
      return why("'" + std::string(item) + "': a range needs both ends");
    auto a = read_value(span.substr(0, dash), f);
    if (!a) return a.error();
    lo = hi = *a;
    if (dash != std::string_view::npos) {
      auto b = read_value(span.substr(dash + 1), f);
      if (!b) return b.error();
      hi = *b;
      if (hi < lo) return why("range " + std::string(span) + " runs backwards");
    } else if (slash != std::string_view::npos) {
      return why("'" + std::string(item) + "': a step needs a range or * (" + std::string(span) +
                 "-" + std::to_string(f.hi) + std::string(item.substr(slash)) + ")");
    }
  }
  int step = 1;
  if (slash != std::string_view::npos) {
    auto s = read_step(item.substr(slash + 1), f);
    if (!s) return s.error();
    step = *s;
  }
  std::uint64_t bits = 0;
  for (int v = lo; v <= hi; v += step) bits |= std::uint64_t{1} << v;
  return bits;
}

// A whole field: items separated by commas.
runtime::result<std::uint64_t> read_field(std::string_view text, const field_spec& f) {
  std::uint64_t bits = 0;
  for (;;) {
    std::size_t comma = text.find(',');
    auto item = read_item(text.substr(0, comma), f);
    if (!item) return item.error();
    bits |= *item;
    if (comma == std::string_view::npos) return bits;
    text.remove_prefix(comma + 1);
  }
}

std::vector<std::string_view> split_fields(std::string_view text) {
  std::vector<std::string_view> out;
  std::size_t i = 0;
  while (i < text.size()) {
    if (std::isspace(static_cast<unsigned char>(text[i]))) {
      ++i;
      continue;
    }
    std::size_t start = i;
    while (i < text.size() && !std::isspace(static_cast<unsigned char>(text[i]))) ++i;
    out.push_back(text.substr(start, i - start));
  }
  return out;
}

bool has(std::uint64_t bits, unsigned i) { return (bits >> i) & 1; }

// The first set bit at or after `i` (forward) or the last at or before it;
// -1 if there is none.
int pick(std::uint64_t bits, int i, bool forward) {
  if (forward) {
    if (i > 63) return -1;
    std::uint64_t rest = bits & (~std::uint64_t{0} << std::max(i, 0));
    return rest ? std::countr_zero(rest) : -1;
  }
  if (i < 0) return -1;
  std::uint64_t rest = i >= 63 ? bits : bits & ((std::uint64_t{2} << i) - 1);
  return rest ? 63 - std::countl_zero(rest) : -1;
}

std::int64_t minute_of(chr::sys_days day, int hour, int minute) {
  return chr::duration_cast<chr::minutes>(day.time_since_epoch() + chr::hours(hour)).count() +
         minute;
}

// The tick at `minute` since the epoch, if the clock can hold it.
std::optional<schedule::time_point> to_time(std::optional<std::int64_t> minute) {
  using tp = schedule::time_point;
  if (!minute || *minute > chr::floor<chr::minutes>(tp::max()).time_since_epoch().count() ||
      *minute < chr::ceil<chr::minutes>(tp::min()).time_since_epoch().count())
    return std::nullopt;
  return tp(chr::minutes(*minute));
}

std::int64_t floor_minute(schedule::time_point t) {
  return chr::floor<chr::minutes>(t).time_since_epoch().count();
}

}  // namespace

std::optional<catchup> catchup_from_name(std::string_view name) {
  if (name == "one") return catchup::one;
  if (name == "all") return catchup::all;
  if (name == "none") return catchup::none;
  return std::nullopt;
}

runtime::result<schedule> schedule::parse(std::string_view text) {
  auto bad = [&](std::string_view why_text) {
    return why("schedule \"" + std::string(text) + "\": " + std::string(why_text));
  };
  std::vector<std::string_view> fields = split_fields(text);
  if (!fields.empty() && fields[0].starts_with('@')) {
    for (const auto& [name, expansion] : k_macros) {
      if (!same_letters(fields[0], name)) continue;
      if (fields.size() > 1) return bad("a macro stands alone ('" + std::string(name) + "')");
      auto s = parse(expansion);
      s->text_ = std::string(text);
      return s;
    }
    return bad("unknown macro '" + std::string(fields[0]) +
               "' (known: @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly)");
  }
  if (fields.size() != 5) {
    return bad(
        "expected 5 fields (minute hour day-of-month month day-of-week) or a macro like "
        "@daily, found " +
        std::to_string(fields.size()));
  }
  schedule s;
  s.text_ = std::string(text);
  std::uint64_t* sets[] = {&s.minutes_, &s.hours_, &s.days_, &s.months_, &s.weekdays_};
  for (std::size_t i = 0; i < 5; ++i) {
    auto bits = read_field(fields[i], k_fields[i]);
    if (!bits) return bad(std::string(k_fields[i].name) + ": " + bits.error().message);
    *sets[i] = *bits;
  }
  if (has(s.weekdays_, 7)) s.weekdays_ = (s.weekdays_ | 1) & ~(std::uint64_t{1} << 7);
  s.dom_star_ = fields[2].starts_with('*');
  s.dow_star_ = fields[4].starts_with('*');
  return s;
}

bool schedule::day_matches(int day_of_month, int weekday) const {
  bool in_month = has(days_, static_cast<unsigned>(day_of_month));
  bool in_week = has(weekdays_, static_cast<unsigned>(weekday));
  // Vixie cron: two restricted day fields match either way; otherwise both.
  return (dom_star_ || dow_star_) ? in_month && in_week : in_month || in_week;
}

bool schedule::fires() const {
  // A day field that starts with '*' holds day 1 or every weekday, and each
  // (month, day) pair falls on every weekday in some year: only a restricted
  // day of the month under a day-of-week '*' can miss every date.
  if (dom_star_ || !dow_star_) return true;
  constexpr int longest[] = {0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  for (unsigned m = 1; m <= 12; ++m) {
    if (has(months_, m) && (days_ & ((std::uint64_t{2} << longest[m]) - 1)) != 0) return true;
  }
  return false;
}

std::optional<std::int64_t> schedule::seek(std::int64_t minute, bool forward) const {
  if (!fires()) return std::nullopt;
  const int dir = forward ? 1 : -1;
  const int day_start = forward ? 0 : k_last_minute;
  chr::sys_days day = chr::floor<chr::days>(chr::sys_time<chr::minutes>(chr::minutes(minute)));
  auto at = static_cast<int>(minute - minute_of(day, 0, 0));
  for (int step = 0; step < k_cycle_days; ++step) {
    chr::year_month_day ymd(day);
    if (!has(months_, static_cast<unsigned>(ymd.month()))) {
      chr::year_month_day first = ymd.year() / ymd.month() / 1;
      day = forward ? chr::sys_days(first + chr::months(1)) : chr::sys_days(first) - chr::days(1);
      at = day_start;
      continue;
    }
    if (day_matches(static_cast<int>(static_cast<unsigned>(ymd.day())),
                    static_cast<int>(chr::weekday(day).c_encoding()))) {
      int h = at / 60;
      int hour = pick(hours_, h, forward);
      if (hour == h) {
        int m = pick(minutes_, at % 60, forward);
        if (m >= 0) return minute_of(day, h, m);
        hour = pick(hours_, h + dir, forward);
      }
      if (hour >= 0) return minute_of(day, hour, pick(minutes_, forward ? 0 : 59, forward));
    }
    day += chr::days(dir);
    at = day_start;
  }
  return std::nullopt;
}

std::optional<schedule::time_point> schedule::next_after(time_point t) const {
  return to_time(seek(floor_minute(t) + 1, true));
}

std::optional<schedule::time_point> schedule::last_at_or_before(time_point t) const {
  return to_time(seek(floor_minute(t), false));
}

schedule::missed schedule::ticks_missed(time_point from, time_point to, catchup policy) const {
  missed out;
  if (policy == catchup::none || to <= from) return out;
  // A tick m (whole minutes) is after `from` when m > floor(from).
  const std::int64_t after = floor_minute(from);
  for (auto m = seek(floor_minute(to), false); m && *m > after; m = seek(*m - 1, false)) {
    if (out.ticks.size() == max_missed_ticks) {
      out.capped = true;
      break;
    }
    if (auto t = to_time(m)) out.ticks.push_back(*t);
    if (policy == catchup::one) break;
  }
  std::reverse(out.ticks.begin(), out.ticks.end());
  return out;
}

}  // namespace luad::server
