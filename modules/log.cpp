// The `log` module: debug/info/warn/error lines through the daemon's logger,
// tagged with the pid; optional fields are written as a JSON object.
#include <string>
#include <utility>

#include "modules/modules.hpp"
#include "runtime/json.hpp"
#include "runtime/logging.hpp"
#include "runtime/lua_value.hpp"

namespace luad::modules {

namespace {

using runtime::log_level;
using runtime::param_type;

// The fields table at index 2 as JSON, or why it cannot be logged.
std::string fields_json(lua_State* L) {
  runtime::value v;
  std::string why;
  if (!runtime::to_value(L, 2, v, why)) return "(fields not loggable: " + why + ")";
  runtime::result<std::string> text = runtime::json_encode(v);
  if (!text) return "(fields not loggable: " + text.error().message + ")";
  return std::move(*text);
}

// All C++ work happens here, after argument checks; nothing here raises.
void emit(lua_State* L, log_level level, const char* msg, std::size_t len, bool has_fields) {
  try {
    std::string fields = has_fields ? fields_json(L) : std::string();
    runtime::log_from(L, level, std::string_view(msg, len), fields);
  } catch (...) {
    // Out of memory while formatting: drop the line rather than the process.
  }
}

int write(lua_State* L, log_level level) {
  bool has_fields = !lua_isnoneornil(L, 2);
  if (has_fields) luaL_checktype(L, 2, LUA_TTABLE);
  lua_settop(L, 2);
  std::size_t len;
  const char* msg = luaL_tolstring(L, 1, &len);
  emit(L, level, msg, len, has_fields);
  return 0;
}

int log_debug(lua_State* L) { return write(L, log_level::debug); }
int log_info(lua_State* L) { return write(L, log_level::info); }
int log_warn(lua_State* L) { return write(L, log_level::warn); }
int log_error(lua_State* L) { return write(L, log_level::error); }

constexpr param_type log_params[] = {{"msg", "any"}, {"fields", "table<string, any>?"}};

constexpr runtime::function_type manifest[] = {
    {"debug", log_params, {}, "Logs at debug level, tagged with the pid."},
    {"info", log_params, {}, "Logs at info level, tagged with the pid."},
    {"warn", log_params, {}, "Logs at warn level, tagged with the pid."},
    {"error", log_params, {}, "Logs at error level, tagged with the pid."},
};

runtime::module_exports build() {
  return {{{"debug", log_debug}, {"info", log_info}, {"warn", log_warn}, {"error", log_error}}, {}};
}

}  // namespace

extern const runtime::module_def log_module{"log", "Log lines through the daemon's logger.",
                                            runtime::workflow, manifest, build};

}  // namespace luad::modules
