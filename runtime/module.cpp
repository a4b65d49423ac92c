// The module registry: one build per daemon, checked against its manifest, and
// `require`, which builds a module's read-only table once per process.
#include "runtime/module.hpp"

#include <cstdio>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "runtime/process.hpp"
#include "runtime/yield.hpp"

namespace luad::runtime {

namespace {

std::vector<module_exports> g_exports;  // parallel to module_list()
std::string g_names;                    // "time, log, json, errors" for errors

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

}  // namespace

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

void init_modules() {
  static std::once_flag once;
  std::call_once(once, [] {
    for (const module_def* def : module_list()) {
      module_exports ex = def->build();
      check_module(*def, ex);
      g_exports.push_back(std::move(ex));
      if (!g_names.empty()) g_names += ", ";
      g_names += def->name;
    }
  });
}

const module_exports& exports_of(const module_def& def) {
  auto list = module_list();
  for (std::size_t i = 0; i < list.size(); ++i) {
    if (list[i] == &def) return g_exports.at(i);
  }
  throw std::logic_error("module not in the module list");
}

const module_def* find_module(std::string_view name) {
  for (const module_def* def : module_list()) {
    if (def->name == name) return def;
  }
  return nullptr;
}

int sandbox_require(lua_State* L) {
  const char* name = luaL_checkstring(L, 1);
  lua_settop(L, 1);
  if (lua_getfield(L, LUA_REGISTRYINDEX, k_loaded) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, k_loaded);
  }
  if (lua_getfield(L, 2, name) != LUA_TNIL) return 1;
  lua_pop(L, 1);
  const module_def* def = find_module(name);
  if (!def) return luaL_error(L, "module '%s' not found (available: %s)", name, g_names.c_str());
  class_set allowed = process::of(L)->options().allowed_classes;
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
  const module_exports& ex = exports_of(*def);
  lua_createtable(L, 0, static_cast<int>(ex.functions.size()));
  for (const function_entry& f : ex.functions) {
    push_binding(L, f.fn);
    lua_setfield(L, -2, f.name);
  }
  if (def->constants) def->constants(L, lua_gettop(L));
  push_readonly(L, -1, name);
  lua_pushvalue(L, -1);
  lua_setfield(L, 2, name);
  return 1;
}

}  // namespace luad::runtime
