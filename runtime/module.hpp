// Module declarations (name, classes, type manifest, build function) and the
// per-process `require` that builds a module's immutable table on first use.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/lua.hpp"

namespace luad::runtime {

struct yield_type;

/// What a module does, as a bit set. A process may be restricted to a set of
/// classes; a module loads only if every class it has is in that set.
enum module_class : std::uint8_t {
  deterministic = 1 << 0,     ///< same inputs, same outputs (json, errors)
  nondeterministic = 1 << 1,  ///< reads clocks or randomness (time.now)
  io = 1 << 2,                ///< touches files or the terminal
  network = 1 << 3,           ///< talks to other machines
  storage = 1 << 4,           ///< reads or writes durable state
  workflow = 1 << 5,          ///< safe inside a durable workflow (replayable)
};
using class_set = std::uint8_t;
inline constexpr class_set all_classes = 0x3f;
/// The restriction a workflow process runs under.
inline constexpr class_set workflow_classes = deterministic | workflow;

/// Writes "deterministic, workflow" for a class set.
std::string class_names(class_set classes);

/// One parameter or return value in a type manifest. `type` uses Lua language
/// server syntax ("number", "string?", "table<string, any>", "luad.error").
struct param_type {
  const char* name;
  const char* type;
};

/// The manifest entry of one function: what it takes, what it returns, and a
/// one-line description for generated editor definitions.
struct function_type {
  const char* name;
  std::span<const param_type> params;
  std::span<const param_type> returns;
  const char* doc;
};

/// One exported function. Bindings follow the yield protocol: return the number
/// of results, or push a yield object and return -1 (see runtime/yield.hpp).
struct function_entry {
  const char* name;
  lua_CFunction fn;
};

/// What a module's build function returns: its functions and the yield types
/// they may produce. Built once per daemon, shared by every process.
struct module_exports {
  std::vector<function_entry> functions;
  std::vector<const yield_type*> yields;
};

/// A module, declared once. `constants` (optional) adds non-function fields to
/// the table after the functions (e.g. `json.null`); it runs in the process.
struct module_def {
  std::string_view name;
  std::string_view description;
  class_set classes;
  std::span<const function_type> manifest;
  module_exports (*build)();
  void (*constants)(lua_State* L, int table) = nullptr;
  /// Optional Lua source of the module's Lua part (the `test` module's
  /// assertions): run at each require, after `constants`, with the table as
  /// its argument, to add functions that may yield (pcall, receive). Those
  /// functions are described by `script_manifest` (for `luad types`; a test
  /// checks the script defines each).
  std::string_view script = {};
  std::span<const function_type> script_manifest = {};
};

/// The modules a host gave its scheduler (as a host calls luaL_openlibs; the
/// daemon's list is modules::all()), each built once and checked against its
/// manifest. Read-only after construction, so thread-safe.
class module_registry {
 public:
  /// Builds every module of `list`; throws std::logic_error on a broken
  /// declaration (a function without manifest entry, a bad class set).
  explicit module_registry(std::span<const module_def* const> list);

  std::span<const module_def* const> list() const { return list_; }
  /// The cached exports of `def`; throws std::logic_error if it is not listed.
  const module_exports& exports_of(const module_def& def) const;
  /// Looks a module up by name; nullptr if there is none.
  const module_def* find(std::string_view name) const;
  /// "time, log, json, ..." for error messages.
  const std::string& names() const { return names_; }

 private:
  std::vector<const module_def*> list_;
  std::vector<module_exports> exports_;  // parallel to list_
  std::string names_;
};

/// The module registry of the scheduler that runs `L`'s process.
const module_registry& modules_of(lua_State* L);

/// The `require` binding installed into every process's globals: a registered
/// module by name, else a Lua file below the script root (runtime/package.hpp).
/// Results are cached per process. A plain C function (not trampolined): it
/// runs a package's chunk with a continuation, so the chunk may yield.
int sandbox_require(lua_State* L);

/// Forgets file package `name` in the calling process's require cache, so
/// that its next `require` loads the file's current code. Returns false when
/// it was not loaded (registered modules are never unloaded). Raises only
/// Lua's memory error.
bool unload_package(lua_State* L, const char* name);

/// If the table at `idx` is a module's (lazily filled) table, materialises all
/// of its functions, so that iterating it lists them. No-op otherwise.
void materialize_module(lua_State* L, int idx);

/// Makes the table at `idx` read-only to scripts: replaces it on the stack with
/// an empty proxy whose metatable forwards reads, iteration and `#`, refuses
/// writes with an error naming `name`, and hides itself from getmetatable.
void push_readonly(lua_State* L, int idx, const char* name);

}  // namespace luad::runtime
