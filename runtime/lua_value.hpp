// Moving plain values and structured errors across the Lua boundary.
#pragma once

#include <string>

#include "runtime/lua.hpp"
#include "runtime/value.hpp"

namespace luad::runtime {

/// Pushes `v` onto `L` (arrays and maps become tables). May raise only Lua's
/// own memory error, and holds no C++ object with a destructor while it can.
void push_value(lua_State* L, const value& v);

/// Converts the Lua value at `idx` into `out`. Accepts nil, booleans, numbers,
/// strings and tables whose keys are all strings (a map) or exactly 1..n (an
/// array; an empty table is an empty map). Shared subtables are copied; cycles,
/// functions, userdata, threads and nesting deeper than 100 are refused: returns
/// false with a reason in `why`. Never raises.
bool to_value(lua_State* L, int idx, value& out, std::string& why);

/// Pushes a structured error table `{kind, message, retryable[, traceback]}`
/// with the shared `luad.error` metatable (`tostring(err)` → "kind: message").
void push_error(lua_State* L, const error& e);

/// Reads the error object at `idx`: a structured error table keeps its kind,
/// message and retryable; anything else becomes kind `runtime` with its text.
error to_error(lua_State* L, int idx);

}  // namespace luad::runtime
