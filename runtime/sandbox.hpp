// The sandbox every process runs in: lazily opened safe globals and libraries,
// read-only library tables, and the coroutine/pcall replacements that keep
// scheduler yields and process termination invisible to user code.
#pragma once

#include "runtime/lua.hpp"

namespace luad::runtime {

/// How deeply coroutine resets (coroutine.close, a failed coroutine.wrap) may
/// nest inside __close handlers before coroutine.close fails with "C stack
/// overflow": Lua 5.4.4 counts no C levels across a reset (fixed in 5.4.5).
inline constexpr int max_reset_depth = 100;

/// Captures the standard library function pointers the sandbox hands out.
/// Called once at startup (idempotent, thread-safe).
void init_sandbox();

/// Installs the sandbox into a fresh state: the globals table gets a lazy
/// `__index`, strings get a lazy metatable. Opens nothing else. May raise
/// memory errors: call it in protected mode.
void install_sandbox(lua_State* L);

/// Resumes coroutine `co` from `L` like coroutine.resume does, but a scheduler
/// suspension inside `co` is reported as `k_suspended` so the caller can yield
/// too. Returns the number of results moved to `L`, `k_error` (message on top
/// of `L`) or `k_suspended`.
inline constexpr int k_error = -1;
inline constexpr int k_suspended = -2;
int resume_nested(lua_State* L, lua_State* co, int narg);

}  // namespace luad::runtime
