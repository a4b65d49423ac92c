// What a process leaves behind, copied out of its Lua state within bounds: the
// results (a byte budget, never a tree blow-up), the error and its traceback
// (built in protected mode, so a full heap ends the process with `limit`
// instead of aborting the daemon), and error texts cut to a fixed size.
#pragma once

#include <cstddef>

#include "runtime/limits.hpp"
#include "runtime/lua.hpp"

namespace luad::runtime {

/// Longest error message and traceback an exit keeps (bytes; longer ones are
/// cut at a UTF-8 boundary and marked "...(truncated)").
inline constexpr std::size_t exit_text_bytes = 64 << 10;

/// Copies the `nres` values on top of `L` into `info.results`, within
/// `max_bytes` (copy_value's cost; 0: the copy's hard cap). Results that cannot
/// leave the process make `info` an `error` exit (kind invalid); results past
/// the budget, or a copy that runs out of memory, a `limit` exit. Never throws.
void copy_exit_results(lua_State* L, int nres, std::size_t max_bytes, exit_info& info) noexcept;

/// Fills `info.err` from the error object on top of `L` (a thread whose resume
/// failed) and its traceback, built under lua_pcall. If Lua or C++ memory runs
/// out on the way, `info` becomes a `limit` exit without traceback (keeping
/// the error's message when it was read). Never throws.
void copy_exit_error(lua_State* L, exit_info& info) noexcept;

/// Cuts `info.err.message` and `info.err.traceback` to exit_text_bytes.
void bound_exit_texts(exit_info& info) noexcept;

}  // namespace luad::runtime
