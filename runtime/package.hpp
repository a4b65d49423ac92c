// File packages: `require(name)` of a Lua file below the process's script root.
#pragma once

#include <string>
#include <string_view>

#include "runtime/lua.hpp"

namespace luad::runtime {

/// Loads file package `name` for the calling process, as the second step of
/// `require` (after the registered modules). Expects the stack [1] = name,
/// [2] = the process's loaded table, and behaves like a lua_CFunction: returns
/// 1 with the package's value on top, or raises. `a.b` is `<root>/a/b.lua`,
/// then `<root>/a/b/init.lua`; names that could leave the root, and files
/// whose real path is outside it, raise a structured `permission_denied`.
/// `available` lists the registered modules, for the not-found message.
/// Yields inside the package's top level suspend the process as usual.
int require_package(lua_State* L, const char* available);

/// Checks a package name: dotted parts, none empty, no '/', '\\' or NUL.
/// Returns an empty string if it is fine, else why not.
std::string package_name_problem(std::string_view name);

}  // namespace luad::runtime
