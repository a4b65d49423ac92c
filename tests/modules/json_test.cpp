// Tests of modules/json.cpp: the Lua bindings over the runtime codec on a bare
// Lua state, including json.null, structured errors and running out of Lua memory.
#include <doctest/doctest.h>

#include <cstdlib>
#include <string>

#include "modules/modules.hpp"
#include "runtime/lua_value.hpp"
#include "tests/support.hpp"

namespace luad::modules {
namespace {

using luad::test::has;

// Counts Lua's memory and refuses allocations past `limit` (0 = no limit).
struct budget {
  std::size_t used = 0;
  std::size_t limit = 0;
};

void* limited_alloc(void* ud, void* ptr, std::size_t old_size, std::size_t new_size) {
  auto* b = static_cast<budget*>(ud);
  std::size_t old = ptr != nullptr ? old_size : 0;
  if (new_size == 0) {
    std::free(ptr);
    b->used -= old;
    return nullptr;
  }
  if (b->limit != 0 && new_size > old && b->used + new_size - old > b->limit) return nullptr;
  void* p = std::realloc(ptr, new_size);
  if (p != nullptr) b->used = b->used + new_size - old;
  return p;
}

// A Lua state with the json module as global `json` (built the way the runtime
// does it, minus the trampoline and read-only proxy).
struct json_lua {
  budget mem;
  lua_State* L = lua_newstate(limited_alloc, &mem);
  json_lua() {
    luaL_openlibs(L);
    lua_newtable(L);
    for (const auto& fn : json_module.build().functions) {
      lua_pushcfunction(L, fn.fn);
      lua_setfield(L, -2, fn.name);
    }
    json_module.constants(L, lua_gettop(L));
    lua_setglobal(L, "json");
  }
  ~json_lua() { lua_close(L); }
  json_lua(const json_lua&) = delete;
  json_lua& operator=(const json_lua&) = delete;

  // Runs `code`; returns "ok" or the error message.
  std::string run(const char* code) {
    int status = luaL_loadstring(L, code);
    if (status == LUA_OK) status = lua_pcall(L, 0, 0, 0);
    std::string result = status == LUA_OK ? "ok" : lua_tostring(L, -1);
    lua_settop(L, 0);
    return result;
  }
};

TEST_CASE("json module: manifest matches its functions") {
  auto exports = json_module.build();
  REQUIRE(exports.functions.size() == json_module.manifest.size());
  for (std::size_t i = 0; i < exports.functions.size(); ++i) {
    CHECK(std::string(exports.functions[i].name) == json_module.manifest[i].name);
  }
  CHECK(json_module.classes == (runtime::deterministic | runtime::workflow));
}

TEST_CASE("json.encode and json.decode from Lua") {
  json_lua j;
  CHECK(
      j.run("assert(json.encode({b = 1, a = {1, 2.0, 'x'}}) == '{\"a\":[1,2.0,\"x\"],\"b\":1}')") ==
      "ok");
  CHECK(j.run("assert(json.encode({}) == '{}')") == "ok");
  CHECK(j.run("assert(json.encode(nil) == 'null' and json.encode(json.null) == 'null')") == "ok");
  CHECK(j.run("local t = json.decode('[1, null, {\"k\": null}]')"
              " assert(#t == 3 and t[2] == json.null and t[3].k == json.null)"
              " assert(json.encode(t) == '[1,null,{\"k\":null}]')") == "ok");
  CHECK(j.run("assert(json.decode('null') == json.null)") == "ok");
  CHECK(j.run("assert(math.type(json.decode('3')) == 'integer')"
              " assert(math.type(json.decode('3.0')) == 'float')") == "ok");
}

TEST_CASE("json failures are nil plus a structured invalid error") {
  json_lua j;
  CHECK(j.run("local v, err = json.decode('[1,') assert(v == nil)"
              " assert(err.kind == 'invalid' and err.retryable == false)"
              " assert(err.message == 'line 1 column 4: unexpected end of input')"
              " assert(tostring(err) == 'invalid: line 1 column 4: unexpected end of input')") ==
        "ok");
  CHECK(j.run("local v, err = json.encode({f = print}) assert(v == nil)"
              " assert(err.message == 'cannot convert a function (at .f)', err.message)") == "ok");
  CHECK(j.run("local t = {} t[1] = t local v, err = json.encode(t)"
              " assert(err.message == 'cycle detected (at [1])', err.message)") == "ok");
  CHECK(j.run("local v, err = json.encode(0/0) assert(err.message == 'cannot encode NaN')") ==
        "ok");
  CHECK(has(j.run("json.encode()"), "bad argument #1"));
  CHECK(has(j.run("json.decode({})"), "bad argument #1"));
}

TEST_CASE("json module: running out of Lua memory raises and leaks nothing") {
  json_lua j;
  REQUIRE(j.run("big = string.rep('[\"abcdefghijklmnopqrstuvwxyz\"],', 20000)") == "ok");
  REQUIRE(j.run("text = '[' .. big .. '1]'") == "ok");
  j.mem.limit = j.mem.used + std::size_t{64} * 1024;
  CHECK(j.run("json.decode(text)") == "not enough memory");
  CHECK(j.run("json.encode(text)") == "not enough memory");
  j.mem.limit = 0;
  CHECK(j.run("assert(#json.decode(text) == 20001)") == "ok");
}

}  // namespace
}  // namespace luad::modules
