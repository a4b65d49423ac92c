// Bounded replacements for the library functions whose cost is not bounded by
// memory: pattern matching (runtime/pattern.hpp), string.rep, load
// (runtime/bounded_lib.cpp), and table.move, insert, remove, sort and concat
// (runtime/bounded_table.cpp). Each polls runtime::check_interrupt, so a kill
// or a limit lands within milliseconds; docs/security.md lists the audit.
#pragma once

#include <cstdint>

#include "runtime/lua.hpp"

namespace luad::runtime {

/// Replaces find, match, gmatch, gsub and rep in the string library table at
/// `idx` with the bounded versions (same results and messages as Lua 5.4.4).
void install_bounded_string(lua_State* L, int idx);

/// Replaces move, insert, remove, sort and concat in the table library table
/// at `idx` (same results, order and messages as Lua 5.4.4).
void install_bounded_table(lua_State* L, int idx);

/// The sandbox's `load`: text chunks only, at most source_limit() bytes
/// (runtime/code.hpp), parsed in pieces with check_interrupt between them.
int bounded_load(lua_State* L);

/// Steps one pattern call may take beyond 16 per subject byte (process-wide;
/// default pattern::default_budget); past it the call raises a structured
/// error of kind `limit`, "pattern too complex (step budget exhausted)".
void set_pattern_budget(std::uint64_t steps);
std::uint64_t pattern_budget();

}  // namespace luad::runtime
