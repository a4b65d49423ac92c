// The module registry: one build per daemon, checked against its manifest, and
// `require`, which builds a module's read-only table once per process (or, for
// any other name, loads a file package: runtime/package.cpp).
#include "runtime/module.hpp"

#include <cstdio>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "runtime/package.hpp"
#include "runtime/process.hpp"
#include "runtime/scheduler.hpp"
#include "runtime/yield.hpp"

namespace luad::runtime {

namespace {

void check_module(const module_def& def, const module_exports& ex) {
  std::string name(def.name);
  for (const function_entry& f : ex.functions) {
    bool found = false;
    for (const function_type& t : def.manifest) found |= std::strcmp(t.name, f.name) == 0;
    if (!found)
      throw std::logic_error("module " + name + ": function " + f.name + " has no manifest entry");
    if (!f.fn) throw std::logic_error("module " + name + ": function " + f.name + " is null");
  }
  for (const function_type& t : def.manifest) {
    bool found = false;
    for (const function_entry& f : ex.functions) found |= std::strcmp(t.name, f.name) == 0;
    if (!found)
      throw std::logic_error("module " + name + ": manifest lists " + t.name +
                             " but it is not exported");
  }
  if (def.classes == 0 || (def.classes & ~all_classes)) {
    throw std::logic_error("module " + name + ": bad class set");
  }
}

const char* const k_loaded = "luad.loaded";
int module_key;  // its address keys the module_def in a module table's metatable

// The module_def behind a real module table at `idx`, or nullptr.
const module_def* module_of(lua_State* L, int idx) {
  if (!lua_getmetatable(L, idx)) return nullptr;
  lua_rawgetp(L, -1, &module_key);
  auto* def = static_cast<const module_def*>(lua_touserdata(L, -1));
  lua_pop(L, 2);
  return def;
}

// __index of a real module table: materialises a binding on first use, so a
// process pays only for the functions it touches.
int lazy_module_index(lua_State* L) {
  if (lua_type(L, 2) != LUA_TSTRING) return 0;
  const module_def* def = module_of(L, 1);
  if (!def) return 0;
  const char* key = lua_tostring(L, 2);
  for (const function_entry& f : modules_of(L).exports_of(*def).functions) {
    if (std::strcmp(f.name, key) != 0) continue;
    push_binding(L, f.fn);
    lua_pushvalue(L, 2);
    lua_pushvalue(L, -2);
    lua_rawset(L, 1);
    return 1;
  }
  return 0;
}

}  // namespace

bool unload_package(lua_State* L, const char* name) {
  if (modules_of(L).find(name)) return false;
  if (lua_getfield(L, LUA_REGISTRYINDEX, k_loaded) != LUA_TTABLE) {
    lua_pop(L, 1);
    return false;
  }
  bool loaded = lua_getfield(L, -1, name) != LUA_TNIL;
  lua_pop(L, 1);
  if (loaded) {
    lua_pushnil(L);
    lua_setfield(L, -2, name);
  }
  lua_pop(L, 1);
  return loaded;
}

void materialize_module(lua_State* L, int idx) {
  idx = lua_absindex(L, idx);
  const module_def* def = module_of(L, idx);
  if (!def) return;
  for (const function_entry& f : modules_of(L).exports_of(*def).functions) {
    if (lua_getfield(L, idx, f.name) == LUA_TNIL) {  // (materialises it)
      lua_pop(L, 1);
      continue;
    }
    lua_pop(L, 1);
  }
}

std::string class_names(class_set classes) {
  static constexpr const char* names[] = {"deterministic", "nondeterministic", "io",
                                          "network",       "storage",          "workflow"};
  std::string out;
  for (int i = 0; i < 6; ++i) {
    if (!(classes & (1 << i))) continue;
    if (!out.empty()) out += ", ";
    out += names[i];
  }
  return out;
}

module_registry::module_registry(std::span<const module_def* const> list)
    : list_(list.begin(), list.end()) {
  exports_.reserve(list_.size());
  for (const module_def* def : list_) {
    module_exports ex = def->build();
    check_module(*def, ex);
    exports_.push_back(std::move(ex));
    if (!names_.empty()) names_ += ", ";
    names_ += def->name;
  }
}

const module_exports& module_registry::exports_of(const module_def& def) const {
  for (std::size_t i = 0; i < list_.size(); ++i) {
    if (list_[i] == &def) return exports_[i];
  }
  throw std::logic_error("module " + std::string(def.name) + " is not in the module list");
}

const module_def* module_registry::find(std::string_view name) const {
  for (const module_def* def : list_) {
    if (def->name == name) return def;
  }
  return nullptr;
}

const module_registry& modules_of(lua_State* L) { return process::of(L)->owner().modules(); }

namespace {

// What plain Lua's require hands out from package.loaded without a search:
// the standard libraries the sandbox has (as their globals are), and those
// it leaves out, which get a word of their own instead of "not found".
constexpr std::string_view k_standard[] = {"_G", "coroutine", "math", "string", "table", "utf8"};
constexpr std::string_view k_left_out[] = {"debug", "io", "os", "package"};

template <std::size_t N>
bool one_of(const std::string_view (&names)[N], std::string_view name) {
  for (std::string_view n : names)
    if (n == name) return true;
  return false;
}

}  // namespace

int sandbox_require(lua_State* L) {
  std::size_t len = 0;
  const char* name = luaL_checklstring(L, 1, &len);
  lua_settop(L, 1);
  std::string_view wanted(name, len);
  if (one_of(k_standard, wanted)) {
    // The global (materialised on first read), so that require("string")
    // and `string` are the same table; nil once the script removed it.
    if (lua_getglobal(L, name) != LUA_TNIL) return 1;
    return luaL_error(L, "module '%s': this script has removed the global '%s'", name, name);
  }
  if (one_of(k_left_out, wanted))
    return luaL_error(L,
                      "module '%s' is not available in luad: the sandbox leaves out io, os, "
                      "debug and package (docs/security.md); luad's own modules: %s",
                      name, modules_of(L).names().c_str());
  if (lua_getfield(L, LUA_REGISTRYINDEX, k_loaded) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, k_loaded);
  }
  lua_pushvalue(L, 1);
  if (lua_rawget(L, 2) != LUA_TNIL) return 1;
  lua_pop(L, 1);
  const module_registry& modules = modules_of(L);
  const module_def* def = modules.find(std::string_view(name, len));
  if (!def) return require_package(L, modules.names().c_str());  // a Lua file below the script root
  class_set allowed = process::of(L)->context().allowed_classes;
  if (def->classes & ~allowed) {
    char msg[256];
    {
      std::string has = class_names(def->classes);
      std::string may = class_names(allowed);
      std::snprintf(msg, sizeof msg, "module '%s' is %s; this process may only load %s modules",
                    name, has.c_str(), may.c_str());
    }
    return luaL_error(L, "%s", msg);
  }
  lua_createtable(L, 0, 0);
  lua_createtable(L, 0, 2);
  lua_pushcfunction(L, lazy_module_index);
  lua_setfield(L, -2, "__index");
  lua_pushlightuserdata(L, const_cast<module_def*>(def));
  lua_rawsetp(L, -2, &module_key);
  lua_setmetatable(L, -2);
  if (def->constants) def->constants(L, lua_gettop(L));
  if (!def->script.empty()) {
    char chunkname[64];  // (no C++ object with a destructor across a Lua error)
    std::snprintf(chunkname, sizeof chunkname, "=luad/%s.lua", name);
    if (luaL_loadbufferx(L, def->script.data(), def->script.size(), chunkname, "t") != LUA_OK)
      return lua_error(L);
    lua_pushvalue(L, -2);
    lua_call(L, 1, 0);
  }
  push_readonly(L, -1, name);
  lua_pushvalue(L, -1);
  lua_setfield(L, 2, name);
  return 1;
}

}  // namespace luad::runtime
