// The pattern matcher: Lua 5.4.4's backtracking algorithm (lstrlib.c, read
// for its semantics), with every step counted so that a match can be polled
// for a kill and stopped at its budget. Faults unwind as return values.
//
// DESIGN. The matcher mirrors upstream's control flow on purpose: malformed
// patterns are reported lazily, only when the matcher reaches the bad item,
// so the same (subject, pattern) fails or succeeds exactly as stock Lua does
// (tests/runtime/pattern_test.cpp checks this against the stock library). A
// step is one pattern item tried at one subject position, one character
// scanned by a repetition or a %b, or 64 bytes compared by a back-reference.
#include "runtime/pattern.hpp"

#include <cstring>

namespace luad::runtime::pattern {

namespace {

constexpr char esc = '%';

unsigned char uc(char c) { return static_cast<unsigned char>(c); }

const char* fail(state& ms, fault f) {
  ms.failed = f;
  return nullptr;
}

// A new poll_interval of steps, or false (and the budget fault) when none is left.
bool refill(state& ms) {
  if (ms.budget < poll_interval) {
    ms.failed = fault::budget;
    ms.countdown = 1;
    return false;
  }
  ms.budget -= poll_interval;
  ms.countdown = poll_interval;
  if (ms.poll) ms.poll(ms.poll_arg);
  return true;
}

inline bool tick(state& ms) { return --ms.countdown != 0 || refill(ms); }

// Where the single-character class starting at `p` ends (its suffix, if any).
const char* class_end(state& ms, const char* p) {
  switch (*p++) {
    case esc:
      if (p == ms.p_end) return fail(ms, fault::ends_with_escape);
      return p + 1;
    case '[':
      if (*p == '^') ++p;
      do {  // the first character is a member even if it is ']'
        if (p == ms.p_end) return fail(ms, fault::missing_bracket);
        if (*(p++) == esc && p < ms.p_end) ++p;
      } while (*p != ']');
      return p + 1;
    default: return p;
  }
}

// The classes %a %c %d %g %l %p %s %u %w %x %z as bits per byte, for the "C"
// locale that luad always runs in (it never calls setlocale): the same answers
// as the <cctype> calls upstream makes, without a call into libc for each
// character scanned (std::tolower and std::isalpha were 5 % of a gsub-heavy
// script). pattern_test checks every class against stock Lua for all 256 bytes.
enum class_bit : unsigned short {
  k_alpha = 1 << 0,
  k_cntrl = 1 << 1,
  k_digit = 1 << 2,
  k_graph = 1 << 3,
  k_lower = 1 << 4,
  k_punct = 1 << 5,
  k_space = 1 << 6,
  k_upper = 1 << 7,
  k_alnum = 1 << 8,
  k_xdigit = 1 << 9,
  k_zero = 1 << 10,
};

struct class_table {
  unsigned short of_byte[256] = {};    // which classes each byte is in
  unsigned short of_letter[256] = {};  // the class a letter after '%' names, or 0
  constexpr class_table() {
    for (int c = 0; c < 256; ++c) {
      bool lower = c >= 'a' && c <= 'z', upper = c >= 'A' && c <= 'Z';
      bool digit = c >= '0' && c <= '9', graph = c >= 33 && c <= 126;
      unsigned short b = 0;
      if (lower || upper) b |= k_alpha;
      if (c < 32 || c == 127) b |= k_cntrl;
      if (digit) b |= k_digit;
      if (graph) b |= k_graph;
      if (lower) b |= k_lower;
      if (graph && !(lower || upper || digit)) b |= k_punct;
      if ((c >= '\t' && c <= '\r') || c == ' ') b |= k_space;
      if (upper) b |= k_upper;
      if (lower || upper || digit) b |= k_alnum;
      if (digit || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')) b |= k_xdigit;
      if (c == 0) b |= k_zero;
      of_byte[c] = b;
    }
    const char letters[] = "acdglpsuwxz";
    const unsigned short bits[] = {k_alpha, k_cntrl, k_digit, k_graph,  k_lower, k_punct,
                                   k_space, k_upper, k_alnum, k_xdigit, k_zero};
    for (int i = 0; letters[i]; ++i) {
      of_letter[static_cast<unsigned char>(letters[i])] = bits[i];
      of_letter[static_cast<unsigned char>(letters[i] - 'a' + 'A')] = bits[i];
    }
  }
};
constexpr class_table k_classes;

// Whether byte `c` is in the class `%cl` (an upper-case letter negates), or,
// when `cl` names no class, whether it is `cl` itself.
bool class_has(int c, int cl) {
  unsigned short bit = k_classes.of_letter[cl];
  if (bit == 0) return cl == c;
  bool in = (k_classes.of_byte[c] & bit) != 0;
  return (cl >= 'a') == in;  // lower-case letters are >= 'a', upper-case below
}

// `p` points at '[', `ec` at the closing ']'.
bool set_has(int c, const char* p, const char* ec) {
  bool sig = true;
  if (*(p + 1) == '^') {
    sig = false;
    ++p;
  }
  while (++p < ec) {
    if (*p == esc) {
      ++p;
      if (class_has(c, uc(*p))) return sig;
    } else if (*(p + 1) == '-' && p + 2 < ec) {
      p += 2;
      if (uc(*(p - 2)) <= c && c <= uc(*p)) return sig;
    } else if (uc(*p) == c) {
      return sig;
    }
  }
  return !sig;
}

bool single(const state& ms, const char* s, const char* p, const char* ep) {
  if (s >= ms.src_end) return false;
  int c = uc(*s);
  switch (*p) {
    case '.': return true;
    case esc: return class_has(c, uc(*(p + 1)));
    case '[': return set_has(c, p, ep - 1);
    default: return uc(*p) == c;
  }
}

const char* do_match(state& ms, const char* s, const char* p);

const char* balance(state& ms, const char* s, const char* p) {
  if (p >= ms.p_end - 1) return fail(ms, fault::missing_b_args);
  if (*s != *p) return nullptr;
  char open = *p, close = *(p + 1);
  int depth = 1;
  while (++s < ms.src_end) {
    if (!tick(ms)) return nullptr;
    if (*s == close) {
      if (--depth == 0) return s + 1;
    } else if (*s == open) {
      ++depth;
    }
  }
  return nullptr;
}

const char* max_expand(state& ms, const char* s, const char* p, const char* ep) {
  std::ptrdiff_t i = 0;
  while (single(ms, s + i, p, ep)) {
    ++i;
    if (!tick(ms)) return nullptr;
  }
  for (; i >= 0; --i) {  // the longest first, then one shorter each time
    if (const char* res = do_match(ms, s + i, ep + 1)) return res;
    if (ms.failed != fault::none) return nullptr;
  }
  return nullptr;
}

const char* min_expand(state& ms, const char* s, const char* p, const char* ep) {
  for (;;) {
    if (const char* res = do_match(ms, s, ep + 1)) return res;
    if (ms.failed != fault::none) return nullptr;
    if (!single(ms, s, p, ep)) return nullptr;
    ++s;
  }
}

const char* start_capture(state& ms, const char* s, const char* p, std::ptrdiff_t what) {
  int level = ms.level;
  if (level >= max_captures) return fail(ms, fault::too_many_captures);
  ms.capture[level].init = s;
  ms.capture[level].len = what;
  ms.level = static_cast<unsigned char>(level + 1);
  const char* res = do_match(ms, s, p);
  if (!res) --ms.level;
  return res;
}

const char* end_capture(state& ms, const char* s, const char* p) {
  int l = ms.level - 1;
  while (l >= 0 && ms.capture[l].len != cap_unfinished) --l;
  if (l < 0) return fail(ms, fault::pattern_capture);
  ms.capture[l].len = s - ms.capture[l].init;
  const char* res = do_match(ms, s, p);
  if (!res) ms.capture[l].len = cap_unfinished;
  return res;
}

// A back-reference %1-%9 (`digit` is the character after '%').
const char* match_capture(state& ms, const char* s, int digit) {
  int l = digit - '1';
  if (l < 0 || l >= ms.level || ms.capture[l].len == cap_unfinished) {
    ms.fault_index = l + 1;
    return fail(ms, fault::capture_index);
  }
  auto len = static_cast<std::size_t>(ms.capture[l].len);  // a position: huge, never fits
  if (static_cast<std::size_t>(ms.src_end - s) < len) return nullptr;
  if (!charge(ms, len >> 6)) return nullptr;
  return std::memcmp(ms.capture[l].init, s, len) == 0 ? s + len : nullptr;
}

// One pattern item after another; upstream's `goto init` is the loop.
const char* match_items(state& ms, const char* s, const char* p) {
  for (;;) {
    if (!tick(ms)) return nullptr;
    if (p == ms.p_end) return s;
    switch (*p) {
      case '(':
        if (*(p + 1) == ')') return start_capture(ms, s, p + 2, cap_position);
        return start_capture(ms, s, p + 1, cap_unfinished);
      case ')': return end_capture(ms, s, p + 1);
      case '$':
        if (p + 1 == ms.p_end) return s == ms.src_end ? s : nullptr;
        break;  // a '$' elsewhere is a plain character
      case esc:
        switch (*(p + 1)) {
          case 'b':
            s = balance(ms, s, p + 2);
            if (!s) return nullptr;
            p += 4;
            continue;
          case 'f': {
            p += 2;
            if (*p != '[') return fail(ms, fault::missing_f_bracket);
            const char* ep = class_end(ms, p);
            if (!ep) return nullptr;
            char previous = (s == ms.src_init) ? '\0' : *(s - 1);
            if (set_has(uc(previous), p, ep - 1) || !set_has(uc(*s), p, ep - 1)) return nullptr;
            p = ep;
            continue;
          }
          case '0':
          case '1':
          case '2':
          case '3':
          case '4':
          case '5':
          case '6':
          case '7':
          case '8':
          case '9':
            s = match_capture(ms, s, uc(*(p + 1)));
            if (!s) return nullptr;
            p += 2;
            continue;
          default: break;
        }
        break;
      default: break;
    }
    // A single-character class with an optional suffix.
    const char* ep = class_end(ms, p);
    if (!ep) return nullptr;
    if (!single(ms, s, p, ep)) {
      if (*ep == '*' || *ep == '?' || *ep == '-') {  // may match empty
        p = ep + 1;
        continue;
      }
      return nullptr;
    }
    switch (*ep) {
      case '?':
        if (const char* res = do_match(ms, s + 1, ep + 1)) return res;
        if (ms.failed != fault::none) return nullptr;
        p = ep + 1;
        continue;
      case '+': return max_expand(ms, s + 1, p, ep);
      case '*': return max_expand(ms, s, p, ep);
      case '-': return min_expand(ms, s, p, ep);
      default:
        ++s;
        p = ep;
        continue;
    }
  }
}

const char* do_match(state& ms, const char* s, const char* p) {
  if (ms.depth == 0) return fail(ms, fault::too_complex);
  --ms.depth;
  s = match_items(ms, s, p);
  ++ms.depth;
  return s;
}

}  // namespace

const char* message(fault f) {
  switch (f) {
    case fault::none: return "no fault";
    case fault::ends_with_escape: return "malformed pattern (ends with '%')";
    case fault::missing_bracket: return "malformed pattern (missing ']')";
    case fault::missing_b_args: return "malformed pattern (missing arguments to '%b')";
    case fault::missing_f_bracket: return "missing '[' after '%f' in pattern";
    case fault::capture_index: return "invalid capture index";
    case fault::pattern_capture: return "invalid pattern capture";
    case fault::too_many_captures: return "too many captures";
    case fault::too_complex: return "pattern too complex";
    case fault::budget: return "pattern too complex (step budget exhausted)";
  }
  return "pattern fault";
}

void prepare(state& ms, const char* s, std::size_t ls, const char* p, std::size_t lp,
             std::uint64_t budget, void (*poll)(void*), void* poll_arg) {
  ms.src_init = s;
  ms.src_end = s + ls;
  ms.p_end = p + lp;
  ms.countdown = poll_interval;
  ms.budget = budget > poll_interval ? budget - poll_interval : 0;
  ms.poll = poll;
  ms.poll_arg = poll_arg;
  ms.depth = max_depth;
  ms.level = 0;
  ms.failed = fault::none;
}

const char* match_at(state& ms, const char* s, const char* p) {
  ms.level = 0;
  ms.failed = fault::none;
  ms.depth = max_depth;
  return do_match(ms, s, p);
}

bool charge(state& ms, std::uint64_t steps) {
  while (steps >= ms.countdown) {
    steps -= ms.countdown;
    if (!refill(ms)) return false;
  }
  ms.countdown -= static_cast<std::uint32_t>(steps);
  return true;
}

bool has_specials(const char* p, std::size_t lp) {
  static constexpr char specials[] = "^$*+?.([%-";
  for (std::size_t i = 0; i < lp; ++i)
    if (p[i] != '\0' && std::memchr(specials, p[i], sizeof specials - 1)) return true;
  return false;
}

const char* find_plain(const char* s, std::size_t ls, const char* p, std::size_t lp) {
  if (lp == 0) return s;
  if (lp > ls) return nullptr;
  return static_cast<const char*>(::memmem(s, ls, p, lp));
}

}  // namespace luad::runtime::pattern
