// Moving plain values and structured errors across the Lua boundary.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "runtime/lua.hpp"
#include "runtime/value.hpp"

namespace luad::runtime {

/// Pushes `v` onto `L` (arrays and maps become tables). May raise only Lua's
/// own memory error, and holds no C++ object with a destructor while it can.
void push_value(lua_State* L, const value& v);

/// Converts the Lua value at `idx` into `out`. A NULL light userdata (`json.null`)
/// converts to nil. Accepts nil, booleans, numbers,
/// strings and tables whose keys are all strings (a map) or exactly 1..n (an
/// array; an empty table is an empty map). Shared subtables are copied; cycles,
/// functions, userdata, threads and nesting deeper than 200 are refused: returns
/// false with a reason in `why`. Never raises.
bool to_value(lua_State* L, int idx, value& out, std::string& why);

/// How copy_value ended.
enum class copy_status : std::uint8_t {
  ok,
  refused,        ///< the value cannot be converted (`why` says what and where)
  too_large,      ///< the copy would cost more than the budget left
  out_of_memory,  ///< C++ memory ran out (`out` is left nil)
};

/// to_value with an explicit byte budget, shared by successive calls (a
/// process's results): each value costs sizeof(value), each string (value or
/// key) its printed JSON length (json_cost), each map key sizeof(std::string)
/// more. A table reached twice is charged twice, as the copy is a tree: a DAG
/// that would blow up into a huge tree fails with `too_large` after copying no
/// more than `budget` bytes' worth. `budget` is lowered by what was charged.
/// Never raises.
copy_status copy_value(lua_State* L, int idx, value& out, std::string& why, std::size_t& budget);

/// The longest JSON text `s` can print as: its bytes, plus the escapes of
/// quotes, backslashes, control bytes and bytes that are not valid UTF-8 (each
/// counted at 6 bytes, as a six-byte escape).
std::size_t json_cost(std::string_view s);

/// Pushes a structured error table `{kind, message, retryable[, traceback]}`
/// with the shared `luad.error` metatable (`tostring(err)` → "kind: message").
void push_error(lua_State* L, const error& e);

/// Reads the error object at `idx`: a structured error table keeps its kind,
/// message and retryable; anything else becomes kind `runtime` with its text.
error to_error(lua_State* L, int idx);

/// Returned by the C++ half of a binding when it ran out of C++ memory; the
/// binding raises "not enough memory" once its C++ objects are gone.
inline constexpr int out_of_memory = -2;

namespace detail {
template <class T, int (*Push)(lua_State*, const T&)>
int run_push(lua_State* L) {
  return Push(L, *static_cast<const T*>(lua_touserdata(L, 1)));
}
}  // namespace detail

/// Runs `Push(L, arg)` under lua_pcall, so a Lua memory error cannot jump over
/// the caller's C++ objects. Returns the number of values pushed, or -1 with
/// the error object on top (the binding re-raises it after cleaning up).
template <class T, int (*Push)(lua_State*, const T&)>
int push_protected(lua_State* L, const T& arg) {
  int base = lua_gettop(L);
  lua_pushcfunction(L, (detail::run_push<T, Push>));
  lua_pushlightuserdata(L, const_cast<T*>(&arg));
  if (lua_pcall(L, 1, LUA_MULTRET, 0) != LUA_OK) return -1;
  return lua_gettop(L) - base;
}

/// Pushes `nil, e`, a binding's answer to an expected failure (a
/// runtime::result's error), under lua_pcall. Returns 2, or -1 with Lua's
/// memory error on top: raise it with lua_error once the C++ objects are gone.
int push_failure(lua_State* L, const error& e);

}  // namespace luad::runtime
