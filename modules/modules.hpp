// Every module's declaration; the explicit list lives in modules/list.cpp.
#pragma once

#include <span>
#include <string>
#include <string_view>

#include "runtime/module.hpp"
#include "runtime/result.hpp"

namespace luad::modules {

extern const runtime::module_def time_module;        // modules/time.cpp
extern const runtime::module_def log_module;         // modules/log.cpp
extern const runtime::module_def json_module;        // modules/json.cpp
extern const runtime::module_def errors_module;      // modules/errors.cpp
extern const runtime::module_def process_module;     // modules/process.cpp
extern const runtime::module_def supervisor_module;  // modules/supervisor.cpp
extern const runtime::module_def store_module;       // modules/store.cpp
extern const runtime::module_def http_module;        // modules/http.cpp
extern const runtime::module_def workflow_module;    // modules/workflow.cpp
extern const runtime::module_def test_module;        // modules/test.cpp (luad test only)

/// workflow.side_effect for other modules' bindings: calls the function at
/// index 1 with the values above it, its results recorded in a durable run's
/// journal (and, on replay, returned without calling it). Returns as a
/// binding does (-1: a yield). modules/workflow.cpp.
int side_effect_call(lua_State* L);

/// The script `script` names for a child of the calling process: resolved
/// against the folder of its own script, inside its script root (set in
/// `canon_root`) and permitted ("spawn"), or why not. modules/process.cpp.
runtime::result<std::string> child_script_path(lua_State* L, const char* script,
                                               std::string& canon_root);

/// workflow.now for time.now in a process with a sink of its own (a durable
/// run, luad test's fakes). modules/workflow.cpp.
int workflow_now_call(lua_State* L);
/// time.monotonic as a command its own sink answers (luad test's virtual
/// clock; the values dispatcher answers the steady clock). modules/workflow.cpp.
int monotonic_call(lua_State* L);

/// workflow.start for process.spawn in a durable run: starts a durable
/// child run of the script at index 1 with the values above it as its args,
/// and returns its run id. modules/workflow.cpp.
int workflow_start_call(lua_State* L);

/// Every module, in the order `luad types` lists them (modules/list.cpp).
std::span<const runtime::module_def* const> all();
/// all() and the `test` module: what `luad test` gives its processes.
std::span<const runtime::module_def* const> with_test();

/// The module named `name` in all(), or nullptr.
inline const runtime::module_def* find(std::string_view name) {
  for (const runtime::module_def* def : all()) {
    if (def->name == name) return def;
  }
  return nullptr;
}

}  // namespace luad::modules
