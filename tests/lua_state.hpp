// A bare Lua state for codec tests, outside any process.
#pragma once

#include <doctest/doctest.h>

#include "runtime/lua.hpp"

namespace luad::test {

/// A Lua state with the standard libraries, closed at scope exit.
struct lua {
  lua_State* L = luaL_newstate();
  lua() {
    *static_cast<void**>(lua_getextraspace(L)) = nullptr;  // no process (runtime::check_interrupt)
    luaL_openlibs(L);
  }
  ~lua() { lua_close(L); }
  lua(const lua&) = delete;
  lua& operator=(const lua&) = delete;

  /// Runs `code` (which must return one value) and leaves the value on the stack.
  void eval(const char* code) {
    int status = luaL_loadstring(L, code);
    if (status == LUA_OK) status = lua_pcall(L, 0, 1, 0);
    REQUIRE_MESSAGE(status == LUA_OK, lua_tostring(L, -1));
  }

  /// Runs `code` (asserts, typically) and fails the test with its error if it raises.
  void run(const char* code) {
    bool ok = luaL_dostring(L, code) == LUA_OK;
    CHECK_MESSAGE(ok, (ok ? "" : lua_tostring(L, -1)));
    lua_settop(L, 0);
  }
};

}  // namespace luad::test
