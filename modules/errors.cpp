// The Lua module `errors`: scripts make structured errors (errors.new) and test
// their kind (errors.is). The error tables themselves come from runtime::push_error.
#include <new>
#include <string>
#include <string_view>

#include "modules/modules.hpp"
#include "runtime/lua_value.hpp"

namespace luad::modules {

namespace {

using runtime::error_kind;

using runtime::out_of_memory;

int push_new_error(lua_State* L, const runtime::error& e) {
  runtime::push_error(L, e);
  return 1;
}

// Pushes the error under lua_pcall, so a Lua memory error cannot jump over `e`.
// Returns 1, -1 with the error object on top, or out_of_memory.
int push_new_protected(lua_State* L, error_kind kind, std::string_view message,
                       bool retryable) noexcept {
  try {
    runtime::error e{kind, std::string(message), retryable, {}};
    return runtime::push_protected<runtime::error, push_new_error>(L, e);
  } catch (...) {  // bad_alloc, in practice
    return out_of_memory;
  }
}

// Checks argument `arg` is the name of an error kind; raises otherwise.
error_kind check_kind(lua_State* L, int arg) {
  std::size_t len = 0;
  const char* name = luaL_checklstring(L, arg, &len);
  auto kind = runtime::kind_from_name(std::string_view(name, len));
  if (!kind) luaL_argerror(L, arg, lua_pushfstring(L, "unknown error kind '%s'", name));
  return *kind;
}

// opts.retryable if `opts` (argument 3) is given and sets it, else `fallback`.
bool check_retryable(lua_State* L, bool fallback) {
  if (lua_isnoneornil(L, 3)) return fallback;
  luaL_checktype(L, 3, LUA_TTABLE);
  lua_getfield(L, 3, "retryable");
  bool retryable = fallback;
  if (lua_isboolean(L, -1)) {
    retryable = lua_toboolean(L, -1) != 0;
  } else if (!lua_isnil(L, -1)) {
    luaL_argerror(L, 3, "opts.retryable must be a boolean");
  }
  lua_pop(L, 1);
  return retryable;
}

int errors_new(lua_State* L) {
  error_kind kind = check_kind(L, 1);
  std::size_t len = 0;
  const char* message = luaL_checklstring(L, 2, &len);
  bool retryable =
      check_retryable(L, kind == error_kind::timeout || kind == error_kind::unavailable);
  int n = push_new_protected(L, kind, std::string_view(message, len), retryable);
  if (n == out_of_memory) return luaL_error(L, "not enough memory");
  if (n < 0) return lua_error(L);
  return n;
}

int errors_is(lua_State* L) {
  luaL_checkany(L, 1);
  check_kind(L, 2);
  bool match = false;
  if (lua_type(L, 1) == LUA_TTABLE) {
    lua_pushliteral(L, "kind");
    lua_rawget(L, 1);
    match = lua_type(L, -1) == LUA_TSTRING && lua_rawequal(L, -1, 2) != 0;
  }
  lua_pushboolean(L, match ? 1 : 0);
  return 1;
}

runtime::module_exports build_errors() { return {{{"new", errors_new}, {"is", errors_is}}, {}}; }

constexpr runtime::param_type new_params[] = {
    {"kind", "string"}, {"message", "string"}, {"opts", "{ retryable?: boolean }?"}};
constexpr runtime::param_type new_returns[] = {{"err", "luad.error"}};
constexpr runtime::param_type is_params[] = {{"err", "any"}, {"kind", "string"}};
constexpr runtime::param_type is_returns[] = {{"match", "boolean"}};

constexpr runtime::function_type errors_manifest[] = {
    {"new", new_params, new_returns,
     "Makes a structured error; retryable defaults to true for timeout and unavailable."},
    {"is", is_params, is_returns, "True if err is a table whose kind is the given kind."},
};

}  // namespace

const runtime::module_def errors_module{
    "errors",
    "Structured errors: make them and test their kind",
    runtime::deterministic | runtime::workflow,
    errors_manifest,
    build_errors,
};

}  // namespace luad::modules
