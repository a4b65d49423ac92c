// Cron schedules (server/schedule.hpp): parsing and its errors, the next and
// last tick across months, years and leap days, the Vixie day rule,
// expressions that never fire, and the ticks a daemon that was down runs.
#include "server/schedule.hpp"

#include <doctest/doctest.h>

#include <cstdio>
#include <functional>
#include <string>
#include <vector>

namespace {

namespace chr = std::chrono;
using luad::server::catchup;
using luad::server::schedule;
using tp = schedule::time_point;

// "2024-02-29 09:30" (UTC), optionally with seconds, as a time point.
tp when(const char* text) {
  int y = 0;
  unsigned mo = 0, d = 0;
  int h = 0, mi = 0, s = 0;
  REQUIRE(std::sscanf(text, "%d-%u-%u %d:%d:%d", &y, &mo, &d, &h, &mi, &s) >= 5);
  return chr::sys_days(chr::year(y) / mo / d) + chr::hours(h) + chr::minutes(mi) + chr::seconds(s);
}

std::string show(std::optional<tp> t) {
  if (!t) return "never";
  auto day = chr::floor<chr::days>(*t);
  chr::year_month_day ymd(day);
  chr::hh_mm_ss hms(chr::floor<chr::seconds>(*t - day));
  char out[40];
  std::snprintf(out, sizeof out, "%04d-%02u-%02u %02d:%02d", static_cast<int>(ymd.year()),
                static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                static_cast<int>(hms.hours().count()), static_cast<int>(hms.minutes().count()));
  return out;
}

schedule must(const std::string& text) {
  auto s = schedule::parse(text);
  REQUIRE_MESSAGE(s.ok(), (s ? "" : s.error().message));
  return *s;
}

std::string error_of(const std::string& text) {
  auto s = schedule::parse(text);
  if (s) return "";
  CHECK(s.error().kind == luad::runtime::error_kind::invalid);
  return s.error().message;
}

std::string next(const std::string& text, const char* after) {
  return show(must(text).next_after(when(after)));
}

// The first `n` ticks after `after`.
std::vector<std::string> ticks(const std::string& text, const char* after, int n) {
  schedule s = must(text);
  std::vector<std::string> out;
  std::optional<tp> t = when(after);
  for (int i = 0; i < n && t; ++i) {
    t = s.next_after(*t);
    out.push_back(show(t));
  }
  return out;
}

std::vector<std::string> shown(const std::vector<tp>& v) {
  std::vector<std::string> out;
  out.reserve(v.size());
  for (tp t : v) out.push_back(show(t));
  return out;
}

}  // namespace

TEST_CASE("schedule: fields, lists, ranges, steps and names parse to the ticks they mean") {
  CHECK(ticks("*/15 * * * *", "2024-01-01 00:00", 3) ==
        std::vector<std::string>{"2024-01-01 00:15", "2024-01-01 00:30", "2024-01-01 00:45"});
  CHECK(ticks("5,10-12 * * * *", "2024-01-01 00:00", 5) ==
        std::vector<std::string>{"2024-01-01 00:05", "2024-01-01 00:10", "2024-01-01 00:11",
                                 "2024-01-01 00:12", "2024-01-01 01:05"});
  CHECK(ticks("0 8-18/5 * * *", "2024-01-01 00:00", 4) ==
        std::vector<std::string>{"2024-01-01 08:00", "2024-01-01 13:00", "2024-01-01 18:00",
                                 "2024-01-02 08:00"});
  // Names, in any case, mean their numbers; 7 and 0 are both Sunday.
  CHECK(ticks("0 12 * jan-mar mon-fri", "2024-03-28 00:00", 3) ==
        ticks("0 12 * 1-3 1-5", "2024-03-28 00:00", 3));
  CHECK(ticks("0 12 * JAN-Mar MON-fri", "2024-03-28 00:00", 3) ==
        ticks("0 12 * 1-3 1-5", "2024-03-28 00:00", 3));
  CHECK(ticks("0 0 * * 7", "2024-01-01 00:00", 3) == ticks("0 0 * * sun", "2024-01-01 00:00", 3));
  CHECK(ticks("0 0 * * 0", "2024-01-01 00:00", 3) ==
        std::vector<std::string>{"2024-01-07 00:00", "2024-01-14 00:00", "2024-01-21 00:00"});
  CHECK(ticks("0 0 * * 5-7", "2024-01-01 00:00", 3) ==
        std::vector<std::string>{"2024-01-05 00:00", "2024-01-06 00:00", "2024-01-07 00:00"});
  CHECK(ticks("0 0 1 */4 *", "2024-01-01 00:00", 3) ==
        std::vector<std::string>{"2024-05-01 00:00", "2024-09-01 00:00", "2025-01-01 00:00"});
  // Tabs and runs of spaces separate fields; text() keeps what was given.
  CHECK(ticks("  30\t9   *  * *  ", "2024-01-01 00:00", 1) ==
        std::vector<std::string>{"2024-01-01 09:30"});
  CHECK(must("  30\t9   *  * *  ").text() == "  30\t9   *  * *  ");
}

TEST_CASE("schedule: the macros are their five-field expressions") {
  const char* from = "2024-02-27 10:10";
  CHECK(ticks("@hourly", from, 3) == ticks("0 * * * *", from, 3));
  CHECK(ticks("@daily", from, 3) == ticks("0 0 * * *", from, 3));
  CHECK(ticks("@midnight", from, 3) == ticks("0 0 * * *", from, 3));
  CHECK(ticks("@weekly", from, 3) == ticks("0 0 * * 0", from, 3));
  CHECK(ticks("@monthly", from, 3) == ticks("0 0 1 * *", from, 3));
  CHECK(ticks("@yearly", from, 3) ==
        std::vector<std::string>{"2025-01-01 00:00", "2026-01-01 00:00", "2027-01-01 00:00"});
  CHECK(ticks("@annually", from, 3) == ticks("@yearly", from, 3));
  CHECK(ticks(" @Daily ", from, 1) == ticks("@daily", from, 1));
  CHECK(must("@daily").text() == "@daily");
}

TEST_CASE("schedule: a bad expression names the text, the field and the token") {
  const std::pair<const char*, const char*> cases[] = {
      {"*/0 * * * *", "minute: step 0"},
      {"60 * * * *", "minute: 60 is out of range 0-59"},
      {"99999999999 * * * *", "minute: 99999999999 is out of range 0-59"},
      {"* 24 * * *", "hour: 24 is out of range 0-23"},
      {"* * 0 * *", "day-of-month: 0 is out of range 1-31"},
      {"* * 32 * *", "day-of-month: 32 is out of range 1-31"},
      {"* * * 13 *", "month: 13 is out of range 1-12"},
      {"* * * * 8", "day-of-week: 8 is out of range 0-7"},
      {"x * * * *", "minute: 'x' is not a number"},
      {"jan * * * *", "minute: 'jan' is not a number"},
      {"* * * foo *", "month: 'foo' is not a number or a name (jan..dec)"},
      {"* * * * monday", "day-of-week: 'monday' is not a number or a name (sun..sat)"},
      {"5-1 * * * *", "minute: range 5-1 runs backwards"},
      {"* * * * fri-mon", "day-of-week: range fri-mon runs backwards"},
      {"1,,2 * * * *", "minute: empty list item"},
      {"1, * * * *", "minute: empty list item"},
      {"1- * * * *", "minute: '1-': a range needs both ends"},
      {"-1 * * * *", "minute: '-1': a range needs both ends"},
      {"1-2-3 * * * *", "minute: '2-3' is not a number"},
      {"/5 * * * *", "minute: '/5': no value before '/'"},
      {"5/10 * * * *", "minute: '5/10': a step needs a range or * (5-59/10)"},
      {"*/x * * * *", "minute: step 'x' is not a number"},
      {"*/ * * * *", "minute: step '' is not a number"},
      {"* */25 * * *", "hour: step 25 is larger than the range 0-23"},
      {"* * * * *-5", "day-of-week: '*' is not a number or a name (sun..sat)"},
      {"* * * *",
       "expected 5 fields (minute hour day-of-month month day-of-week) or a macro like @daily, "
       "found 4"},
      {"0 * * * * *",
       "expected 5 fields (minute hour day-of-month month day-of-week) or a macro like @daily, "
       "found 6"},
      {"",
       "expected 5 fields (minute hour day-of-month month day-of-week) or a macro like @daily, "
       "found 0"},
      {"@reboot",
       "unknown macro '@reboot' (known: @yearly, @annually, @monthly, @weekly, @daily, "
       "@midnight, @hourly)"},
      {"@daily 5", "a macro stands alone ('@daily')"},
  };
  for (const auto& [text, why] : cases) {
    std::string expression = text;
    CAPTURE(expression);
    CHECK(error_of(text) == "schedule \"" + std::string(text) + "\": " + why);
  }
}

TEST_CASE("schedule: next_after is strictly after, across hours, months and years") {
  CHECK(next("30 9 * * *", "2024-01-01 09:29:59") == "2024-01-01 09:30");
  CHECK(next("30 9 * * *", "2024-01-01 09:30") == "2024-01-02 09:30");
  CHECK(show(must("30 9 * * *").next_after(when("2024-01-01 09:30") + chr::nanoseconds(1))) ==
        "2024-01-02 09:30");
  CHECK(next("*/20 * * * *", "2024-12-31 23:45") == "2025-01-01 00:00");
  CHECK(next("0 0 1 * *", "2024-01-31 12:00") == "2024-02-01 00:00");
  CHECK(next("0 0 1 1 *", "2024-12-31 23:59") == "2025-01-01 00:00");
  CHECK(ticks("59 23 31 12 *", "2024-06-01 00:00", 2) ==
        std::vector<std::string>{"2024-12-31 23:59", "2025-12-31 23:59"});
  // Months without a 31st are skipped.
  CHECK(ticks("0 0 31 * *", "2024-01-31 00:00", 3) ==
        std::vector<std::string>{"2024-03-31 00:00", "2024-05-31 00:00", "2024-07-31 00:00"});
  CHECK(next("15 10 * jun,dec *", "2024-06-30 10:16") == "2024-12-01 10:15");
  CHECK(next("0 0 1 1 *", "1969-06-01 00:00") == "1970-01-01 00:00");  // before the epoch
  // The last hour and minute of a day roll over to the next matching day.
  CHECK(next("0,59 0,23 * * mon", "2024-01-01 23:59") == "2024-01-08 00:00");
}

TEST_CASE("schedule: last_at_or_before includes its own minute and walks back over years") {
  schedule s = must("30 9 * * *");
  CHECK(show(s.last_at_or_before(when("2024-01-02 09:30"))) == "2024-01-02 09:30");
  CHECK(show(s.last_at_or_before(when("2024-01-02 09:30:59"))) == "2024-01-02 09:30");
  CHECK(show(s.last_at_or_before(when("2024-01-02 09:29:59"))) == "2024-01-01 09:30");
  CHECK(show(must("0 0 1 1 *").last_at_or_before(when("2024-12-31 23:59"))) == "2024-01-01 00:00");
  CHECK(show(must("0 0 31 * *").last_at_or_before(when("2024-05-30 00:00"))) == "2024-03-31 00:00");
}

TEST_CASE("schedule: February 29 comes in leap years only, and not in 2100") {
  CHECK(ticks("0 0 29 2 *", "2023-03-01 00:00", 3) ==
        std::vector<std::string>{"2024-02-29 00:00", "2028-02-29 00:00", "2032-02-29 00:00"});
  CHECK(next("0 0 29 2 *", "2096-03-01 00:00") == "2104-02-29 00:00");
  CHECK(show(must("0 0 29 2 *").last_at_or_before(when("2104-02-28 00:00"))) == "2096-02-29 00:00");
  CHECK(ticks("0 0 * 2 *", "2024-02-27 12:00", 3) ==
        std::vector<std::string>{"2024-02-28 00:00", "2024-02-29 00:00", "2025-02-01 00:00"});
  CHECK(next("0 0 28-31 2 *", "2023-02-28 00:00") == "2024-02-28 00:00");
}

TEST_CASE("schedule: with both day fields restricted a day matches either (Vixie cron)") {
  // The 13th or any Friday.
  CHECK(ticks("0 0 13 * fri", "2024-09-01 00:00", 9) ==
        std::vector<std::string>{"2024-09-06 00:00", "2024-09-13 00:00", "2024-09-20 00:00",
                                 "2024-09-27 00:00", "2024-10-04 00:00", "2024-10-11 00:00",
                                 "2024-10-13 00:00", "2024-10-18 00:00", "2024-10-25 00:00"});
  CHECK(ticks("0 0 1 * mon", "2023-12-31 12:00", 8) ==
        std::vector<std::string>{"2024-01-01 00:00", "2024-01-08 00:00", "2024-01-15 00:00",
                                 "2024-01-22 00:00", "2024-01-29 00:00", "2024-02-01 00:00",
                                 "2024-02-05 00:00", "2024-02-12 00:00"});
  // A field that starts with '*' is not restricted: then both must match
  // (odd days that are Mondays).
  CHECK(ticks("0 0 */2 * mon", "2023-12-31 12:00", 6) ==
        std::vector<std::string>{"2024-01-01 00:00", "2024-01-15 00:00", "2024-01-29 00:00",
                                 "2024-02-05 00:00", "2024-02-19 00:00", "2024-03-11 00:00"});
  CHECK(ticks("0 0 1-31 * mon", "2024-01-01 00:00", 2) ==
        std::vector<std::string>{"2024-01-02 00:00", "2024-01-03 00:00"});
  // Day 30 never comes in February, but Mondays do.
  CHECK(next("0 0 30 2 mon", "2024-01-01 00:00") == "2024-02-05 00:00");
}

TEST_CASE("schedule: an expression no date matches never fires") {
  for (const char* text : {"0 0 30 2 *", "0 0 31 feb *", "0 0 31 4,6,9,11 *", "0 0 30-31 2 *"}) {
    std::string expression = text;
    CAPTURE(expression);
    schedule s = must(text);
    CHECK_FALSE(s.fires());
    CHECK_FALSE(s.next_after(when("2024-01-01 00:00")));
    CHECK_FALSE(s.last_at_or_before(when("2024-01-01 00:00")));
    for (catchup c : {catchup::one, catchup::all, catchup::none})
      CHECK(s.ticks_missed(when("2000-01-01 00:00"), when("2024-01-01 00:00"), c).ticks.empty());
  }
  for (const char* text : {"0 0 29 2 *", "0 0 30 2 mon", "0 0 31 4,12 *", "0 0 */30 2 *"}) {
    std::string expression = text;
    CAPTURE(expression);
    CHECK(must(text).fires());
  }
  // Past the clock's range (2262) there is no next tick either.
  CHECK_FALSE(must("0 0 1 1 *").next_after(tp::max() - chr::hours(24 * 40)));
}

TEST_CASE("schedule: next_after and last_at_or_before agree with a minute-by-minute scan") {
  struct civil {
    int minute, hour;
    unsigned day, month, weekday;
  };
  auto parts = [](tp t) {
    auto day = chr::floor<chr::days>(t);
    chr::year_month_day ymd(day);
    auto m = static_cast<int>(chr::floor<chr::minutes>(t - day).count());
    return civil{m % 60, m / 60, static_cast<unsigned>(ymd.day()),
                 static_cast<unsigned>(ymd.month()), chr::weekday(day).c_encoding()};
  };
  const std::pair<const char*, std::function<bool(const civil&)>> cases[] = {
      {"*/15 9-17 * * mon-fri",
       [](const civil& c) {
         return c.minute % 15 == 0 && c.hour >= 9 && c.hour <= 17 && c.weekday >= 1 &&
                c.weekday <= 5;
       }},
      {"0 0 13 * fri",
       [](const civil& c) {
         return c.minute == 0 && c.hour == 0 && (c.day == 13 || c.weekday == 5);
       }},
      {"5,35 */6 */2 jan-mar,oct *",
       [](const civil& c) {
         return (c.minute == 5 || c.minute == 35) && c.hour % 6 == 0 && c.day % 2 == 1 &&
                (c.month <= 3 || c.month == 10);
       }},
      {"0 12 1-7 * sun",
       [](const civil& c) {
         return c.minute == 0 && c.hour == 12 && (c.day <= 7 || c.weekday == 0);
       }},
      {"59 23 29 2 *",
       [](const civil& c) {
         return c.minute == 59 && c.hour == 23 && c.day == 29 && c.month == 2;
       }},
  };
  const tp start = when("2024-01-20 00:00");
  const int window = 60 * 24 * 50;  // 50 days, over a leap day and a month end
  for (const auto& [text, matches] : cases) {
    std::string expression = text;
    CAPTURE(expression);
    schedule s = must(text);
    std::vector<tp> expected;
    for (int i = 0; i < window; ++i)
      if (matches(parts(start + chr::minutes(i)))) expected.push_back(start + chr::minutes(i));
    REQUIRE_FALSE(expected.empty());
    std::size_t after = 0;  // the first expected tick after the minute scanned
    int wrong = 0;
    for (int i = 0; i + 1 < window && wrong < 5; ++i) {
      tp t = start + chr::minutes(i) + chr::seconds(i % 60);
      while (after < expected.size() && expected[after] <= t) ++after;
      if (after < expected.size() && s.next_after(t) != expected[after]) ++wrong;
      if (after > 0 && s.last_at_or_before(t) != expected[after - 1]) ++wrong;
    }
    CHECK(wrong == 0);
  }
}

TEST_CASE("schedule: ticks_missed runs the latest, every or no missed tick") {
  schedule s = must("0 * * * *");
  tp from = when("2024-01-01 10:00");  // the last tick run
  tp to = when("2024-01-01 13:30");    // now
  auto all = s.ticks_missed(from, to, catchup::all);
  CHECK(shown(all.ticks) ==
        std::vector<std::string>{"2024-01-01 11:00", "2024-01-01 12:00", "2024-01-01 13:00"});
  CHECK_FALSE(all.capped);
  CHECK(shown(s.ticks_missed(from, to, catchup::one).ticks) ==
        std::vector<std::string>{"2024-01-01 13:00"});
  CHECK(s.ticks_missed(from, to, catchup::none).ticks.empty());
  // `from` is excluded and `to` included: with next_after(to) every tick
  // is counted once.
  CHECK(shown(s.ticks_missed(from, when("2024-01-01 11:00"), catchup::all).ticks) ==
        std::vector<std::string>{"2024-01-01 11:00"});
  CHECK(show(s.next_after(when("2024-01-01 11:00"))) == "2024-01-01 12:00");
  // Nothing missed: a short outage, or a clock that went back.
  for (catchup c : {catchup::one, catchup::all, catchup::none}) {
    CHECK(s.ticks_missed(from, when("2024-01-01 10:59"), c).ticks.empty());
    CHECK(s.ticks_missed(to, from, c).ticks.empty());
  }
  // A last tick run off the minute still excludes only its own minute.
  CHECK(shown(s.ticks_missed(from + chr::seconds(30), to, catchup::all).ticks).size() == 3);
  CHECK(luad::server::catchup_from_name("one") == catchup::one);
  CHECK(luad::server::catchup_from_name("all") == catchup::all);
  CHECK(luad::server::catchup_from_name("none") == catchup::none);
  CHECK_FALSE(luad::server::catchup_from_name("some"));
}

TEST_CASE("schedule: catchup all runs at most the latest 1000 missed ticks") {
  static_assert(luad::server::max_missed_ticks == 1000);
  schedule s = must("* * * * *");
  tp from = when("2024-01-01 00:00");
  auto exactly = s.ticks_missed(from, from + chr::minutes(1000), catchup::all);
  CHECK(exactly.ticks.size() == 1000);
  CHECK_FALSE(exactly.capped);
  auto day = s.ticks_missed(from, when("2024-01-02 00:00"), catchup::all);  // 1440 missed
  REQUIRE(day.ticks.size() == 1000);
  CHECK(day.capped);
  CHECK(show(day.ticks.front()) == "2024-01-01 07:21");
  CHECK(show(day.ticks.back()) == "2024-01-02 00:00");
  // Ten years down: still 1000 ticks, the latest, without walking the outage.
  auto decade = s.ticks_missed(from, when("2034-01-01 00:00"), catchup::all);
  CHECK(decade.capped);
  CHECK(decade.ticks.size() == 1000);
  CHECK(show(decade.ticks.back()) == "2034-01-01 00:00");
  CHECK(shown(s.ticks_missed(from, when("2034-01-01 00:00"), catchup::one).ticks) ==
        std::vector<std::string>{"2034-01-01 00:00"});
}
