// Lua 5.4.4's pattern matching, reimplemented with a step budget: the matcher
// behind the sandbox's string.find, match, gmatch and gsub (bounded_lib.cpp).
// Pure C++, no Lua: faults come back as values, the binding raises them.
#pragma once

#include <cstddef>
#include <cstdint>

namespace luad::runtime::pattern {

inline constexpr int max_captures = 32;  ///< LUA_MAXCAPTURES
inline constexpr int max_depth = 200;    ///< MAXCCALLS: deeper is "pattern too complex"
inline constexpr std::ptrdiff_t cap_unfinished = -1;
inline constexpr std::ptrdiff_t cap_position = -2;
/// Steps between two calls of the poll function.
inline constexpr std::uint32_t poll_interval = 1024;
/// Steps one call may take by default, beyond 16 per subject byte (~0.1 s).
inline constexpr std::uint64_t default_budget = 20'000'000;

/// Why a match stopped without an answer. Each has Lua 5.4.4's message.
enum class fault : std::uint8_t {
  none,
  ends_with_escape,   ///< "malformed pattern (ends with '%')"
  missing_bracket,    ///< "malformed pattern (missing ']')"
  missing_b_args,     ///< "malformed pattern (missing arguments to '%b')"
  missing_f_bracket,  ///< "missing '[' after '%f' in pattern"
  capture_index,      ///< "invalid capture index %N" (N in `state::fault_index`)
  pattern_capture,    ///< "invalid pattern capture"
  too_many_captures,  ///< "too many captures"
  too_complex,        ///< "pattern too complex" (recursion deeper than max_depth)
  budget,             ///< the step budget ran out (ours; not in stock Lua)
};

/// The message of a fault other than capture_index, as Lua 5.4.4 words it.
const char* message(fault f);

/// One match in progress. Trivially copyable and destructible: the poll
/// function may longjmp out of a match (runtime::check_interrupt does).
/// Subject and pattern must be readable one byte past their end (a NUL), as
/// Lua strings are.
struct state {
  const char* src_init = nullptr;
  const char* src_end = nullptr;
  const char* p_end = nullptr;
  std::uint64_t budget = 0;  ///< steps left, beyond `countdown`
  std::uint32_t countdown = 0;
  void (*poll)(void*) = nullptr;  ///< called every poll_interval steps; may not return
  void* poll_arg = nullptr;
  int depth = max_depth;
  unsigned char level = 0;  ///< captures opened so far
  fault failed = fault::none;
  int fault_index = 0;
  struct capture {
    const char* init;
    std::ptrdiff_t len;  ///< a length, cap_unfinished or cap_position
  } capture[max_captures];
};

/// Sets `ms` up for subject `s` and pattern `p` (its '^' already skipped),
/// with `budget` steps and `poll` called every poll_interval of them.
void prepare(state& ms, const char* s, std::size_t ls, const char* p, std::size_t lp,
             std::uint64_t budget, void (*poll)(void*), void* poll_arg);

/// Matches pattern `p` at subject position `s` (captures reset first). The end
/// of the match, or nullptr: no match when `ms.failed` is none, else a fault.
const char* match_at(state& ms, const char* s, const char* p);

/// Counts `steps` of work done outside match_at (a scan between attempts).
/// False, with ms.failed = budget, once the budget is gone.
bool charge(state& ms, std::uint64_t steps);

/// True if pattern `p` holds one of Lua's special characters ("^$*+?.([%-").
bool has_specials(const char* p, std::size_t lp);

/// The first occurrence of `p` in `s` (memmem: linear time), or nullptr.
const char* find_plain(const char* s, std::size_t ls, const char* p, std::size_t lp);

}  // namespace luad::runtime::pattern
