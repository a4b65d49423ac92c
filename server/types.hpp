// `luad types --out DIR`: Lua language server (LuaLS) definition files made from
// the module manifests, and a luacheck config restricted to the sandbox's globals.
#pragma once

#include <iosfwd>
#include <span>
#include <string>

#include "runtime/module.hpp"

namespace luad::server {

/// A global the sandbox gives every script (runtime/sandbox.cpp); for a
/// library table, every field it has. Tests check that the two lists agree.
struct sandbox_global {
  const char* name;
  std::span<const char* const> fields;  ///< empty for functions and plain values
};

/// The sandbox's globals, sorted by name.
std::span<const sandbox_global> sandbox_globals();

/// The text of DIR/<module>.lua: `---@meta <module>`, a `luad.<module>` class
/// table, every manifest function with its doc line, `---@param` and
/// `---@return` lines, the module's known constants, and `return <module>`.
std::string module_definitions(const runtime::module_def& def);

/// The text of DIR/luad.lua: the shared classes the manifests refer to
/// (luad.error, luad.pid, ...) and `require`, which .luarc.json's disabled
/// `package` library would otherwise take away.
std::string shared_definitions();

/// The text of DIR/.luarc.json: Lua 5.4, `library_dir` as workspace.library,
/// and the libraries the sandbox removes (io, os, debug, package) disabled.
std::string luarc_json(const std::string& library_dir);

/// The text of DIR/.luacheckrc: a `luad` std with only the sandbox's globals.
std::string luacheckrc();

/// Writes every file above into `out_dir`, creating it if missing. Returns 0,
/// or 1 after writing a message that names the failing path to `err`.
int write_types(const std::string& out_dir, std::ostream& err);

}  // namespace luad::server
