// Tests of runtime/value.cpp and runtime/lua_value.cpp: error kind names, values
// to and from Lua (round trips, every refusal), structured errors both ways.
#include "runtime/lua_value.hpp"

#include <doctest/doctest.h>

#include "tests/lua_state.hpp"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <string>

namespace luad::runtime {
namespace {

using test::lua;

// Converts what `code` returns; `why` gets the reason on failure.
bool convert(const char* code, value& out, std::string& why) {
  lua l;
  l.eval(code);
  int top = lua_gettop(l.L);
  bool ok = to_value(l.L, -1, out, why);
  CHECK(lua_gettop(l.L) == top);  // the stack is left as it was, whatever happened
  return ok;
}

value convert_ok(const char* code) {
  value v;
  std::string why;
  CHECK_MESSAGE(convert(code, v, why), why);
  return v;
}

std::string convert_fails(const char* code) {
  value v;
  std::string why;
  CHECK_FALSE(convert(code, v, why));
  return why;
}

value round_trip(const value& v) {
  lua l;
  push_value(l.L, v);
  value back;
  std::string why;
  CHECK_MESSAGE(to_value(l.L, -1, back, why), why);
  return back;
}

// Map entries in key order (lua_next order is arbitrary).
value::map by_key(value::map m) {
  std::sort(m.begin(), m.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  return m;
}

TEST_CASE("kind names round trip") {
  for (int i = 0; i <= static_cast<int>(error_kind::runtime); ++i) {
    auto kind = static_cast<error_kind>(i);
    CHECK(kind_from_name(kind_name(kind)) == kind);
  }
  CHECK(kind_name(error_kind::permission_denied) == "permission_denied");
  CHECK(kind_name(error_kind::not_found) == "not_found");
  CHECK_FALSE(kind_from_name("Timeout").has_value());
  CHECK_FALSE(kind_from_name("").has_value());
}

TEST_CASE("scalars keep their types") {
  CHECK(convert_ok("return nil").is_nil());
  CHECK(convert_ok("return true") == value(true));
  CHECK(convert_ok("return 3") == value(3));
  CHECK(convert_ok("return 3.0") == value(3.0));
  CHECK(convert_ok("return math.maxinteger") == value(std::numeric_limits<std::int64_t>::max()));
  CHECK(convert_ok("return math.mininteger") == value(std::numeric_limits<std::int64_t>::min()));
  CHECK(convert_ok("return 'a\\0b'") == value(std::string("a\0b", 3)));
  CHECK(convert_ok("return 1/0") == value(std::numeric_limits<double>::infinity()));
}

TEST_CASE("tables become arrays or maps") {
  CHECK(convert_ok("return {10, 'x', true}") == value(value::array{10, "x", true}));
  CHECK(convert_ok("return {}") == value(value::map{}));
  value m = convert_ok("return {a = 1}");
  CHECK(m == value(value::map{{"a", 1}}));
  value nested = convert_ok("return {list = {1, 2.5, {k = 'v'}}}");
  CHECK(nested == value(value::map{{"list", value::array{1, 2.5, value::map{{"k", "v"}}}}}));
}

TEST_CASE("metamethods are not consulted") {
  value v = convert_ok(
      "return setmetatable({1}, {__index = function() error('no') end,"
      " __pairs = function() error('no') end, __len = function() error('no') end})");
  CHECK(v == value(value::array{1}));
}

TEST_CASE("refusals say why") {
  CHECK(convert_fails("return {[true] = 1}") == "table has a key of type boolean");
  CHECK(convert_fails("return {[1.5] = 1}") == "table has a non-integer number key");
  CHECK(convert_fails("return {1, 2, x = 3}") == "table mixes integer and string keys");
  CHECK(convert_fails("return {[1] = 1, [3] = 3}") ==
        "table has integer keys that are not exactly 1..n");
  CHECK(convert_fails("return {[0] = 1}") == "table has integer keys that are not exactly 1..n");
  CHECK(convert_fails("return print") == "cannot convert a function");
  CHECK(convert_fails("return coroutine.create(print)") == "cannot convert a thread");
  CHECK(convert_fails("return io.stdout") == "cannot convert a userdata");
  CHECK(convert_fails("return {a = {1, print}}") == "cannot convert a function (at .a[2])");
  CHECK(convert_fails("return {['x y'] = {[{}] = 1}}") ==
        "table has a key of type table (at [\"x y\"])");
  CHECK(convert_fails("return {['\\0\\xff' .. string.rep('x', 50)] = print}") ==
        "cannot convert a function (at [\"??" + std::string(38, 'x') + "\"])");
}

TEST_CASE("cycles are refused, shared subtables copied") {
  CHECK(convert_fails("local t = {} t.self = t return t") == "cycle detected (at .self)");
  CHECK(convert_fails("local t = {{}} t[1][1] = t return t") == "cycle detected (at [1][1])");
  value v = convert_ok("local s = {1} return {a = s, b = s, c = {s}}");
  auto* m = v.get<value::map>();
  REQUIRE(m != nullptr);
  CHECK(m->size() == 3);
  for (const auto& [key, item] : *m) {
    if (key == "c") {
      CHECK(item == value(value::array{value::array{1}}));
    } else {
      CHECK(item == value(value::array{1}));
    }
  }
}

TEST_CASE("nesting deeper than 200 is refused") {
  const char* build = "local t = 1 for i = 1, %d do t = {t} end return t";
  char code[128];
  std::snprintf(code, sizeof code, build, 200);
  convert_ok(code);
  std::snprintf(code, sizeof code, build, 201);
  std::string why = convert_fails(code);
  CHECK(why.rfind("nesting deeper than 200 levels", 0) == 0);
}

TEST_CASE("copies of shared data are capped") {
  std::string why = convert_fails(
      "local s = string.rep('x', 1 << 20) local t = {} for i = 1, 300 do t[i] = s end return t");
  CHECK(why.rfind("value too large to copy", 0) == 0);
}

TEST_CASE("copy_value charges a shared budget: the tree's cost, never the DAG's") {
  lua l;
  l.eval("local s = string.rep('x', 1000) local t = {} for i = 1, 50 do t[i] = s end return t");
  value v;
  std::string why;
  std::size_t budget = 40000;  // less than 50 copies of 1000 bytes
  CHECK(copy_value(l.L, -1, v, why, budget) == copy_status::too_large);
  CHECK(why.rfind("value too large to copy", 0) == 0);
  budget = 60000;
  CHECK(copy_value(l.L, -1, v, why, budget) == copy_status::ok);
  CHECK(budget < 60000 - 50 * 1000);  // each reference charged its own copy
  // The budget is shared: what one copy leaves is all the next may use.
  l.eval("return string.rep('y', 2000)");
  value s;
  std::size_t left = 1999;
  CHECK(copy_value(l.L, -1, s, why, left) == copy_status::too_large);
  left = 2000 + sizeof(value);
  CHECK(copy_value(l.L, -1, s, why, left) == copy_status::ok);
  CHECK(left == 0);
  l.eval("return function() end");
  budget = 1 << 20;
  CHECK(copy_value(l.L, -1, v, why, budget) == copy_status::refused);
}

TEST_CASE("json_cost bounds the printed size of a string") {
  CHECK(json_cost("plain") == 5);
  CHECK(json_cost("a\"b\\c") == 7);
  CHECK(json_cost(std::string("\x01\n", 2)) == 12);
  CHECK(json_cost("h\xC3\xA9llo") == 6);      // valid UTF-8 prints as it is
  CHECK(json_cost("\xE2\x82\xAC") == 3);      // a 3-byte sequence
  CHECK(json_cost("\xFF") == 6);              // not UTF-8: an escape
  CHECK(json_cost("\xC3") == 6);              // truncated sequence
  CHECK(json_cost("\xED\xA0\x80") == 18);     // a surrogate is not UTF-8
  CHECK(json_cost("\xF0\x9F\x98\x80") == 4);  // an emoji
}

TEST_CASE("the NULL light userdata reads as nil") {
  lua l;
  lua_createtable(l.L, 2, 0);
  lua_pushinteger(l.L, 1);
  lua_rawseti(l.L, -2, 1);
  lua_pushlightuserdata(l.L, nullptr);
  lua_rawseti(l.L, -2, 2);
  value v;
  std::string why;
  CHECK(to_value(l.L, -1, v, why));
  CHECK(v == value(value::array{1, value{}}));
  int x = 0;
  lua_pushlightuserdata(l.L, &x);
  CHECK_FALSE(to_value(l.L, -1, v, why));
  CHECK(why == "cannot convert a userdata");
}

TEST_CASE("push_value and to_value round trip") {
  value v = value::map{
      {"i", std::int64_t{-7}},
      {"f", 0.5},
      {"big", std::numeric_limits<std::int64_t>::max()},
      {"s", "hello"},
      {"t", true},
      {"list", value::array{1, 2.0, "three", value::array{}}},
      {"m", value::map{{"k", value::map{}}}},
  };
  value::map expected = *v.get<value::map>();
  expected[5].second = value::array{1, 2.0, "three", value::map{}};  // {} reads back as a map
  value back = round_trip(v);
  REQUIRE(back.get<value::map>() != nullptr);
  CHECK(by_key(*back.get<value::map>()) == by_key(expected));
}

TEST_CASE("push_value of nil and nil in a map") {
  lua l;
  push_value(l.L, value{});
  CHECK(lua_isnil(l.L, -1));
  CHECK(round_trip(value::map{{"a", value{}}, {"b", 1}}) == value(value::map{{"b", 1}}));
}

TEST_CASE("push_error builds a luad.error table") {
  lua l;
  push_error(l.L, error{error_kind::timeout, "too slow", true, {}});
  lua_setglobal(l.L, "e1");
  push_error(l.L, error{error_kind::internal, "bug", false, "stack here"});
  lua_setglobal(l.L, "e2");
  l.eval(
      "return e1.kind == 'timeout' and e1.message == 'too slow' and e1.retryable == true"
      " and e1.traceback == nil and tostring(e1) == 'timeout: too slow'"
      " and e2.traceback == 'stack here' and e2.retryable == false"
      " and getmetatable(e1) == false and getmetatable(e2) == false"
      " and debug.getregistry()['luad.error'].__name == 'luad.error'");
  CHECK(lua_toboolean(l.L, -1));
}

TEST_CASE("to_error keeps structured errors") {
  lua l;
  error e{error_kind::unavailable, "db down", true, "tb"};
  push_error(l.L, e);
  CHECK(to_error(l.L, -1) == e);
  l.eval("return {kind = 'not_found', message = 'no such key'}");
  CHECK(to_error(l.L, -1) == error{error_kind::not_found, "no such key", false, {}});
  l.eval("return {kind = 'limit'}");
  CHECK(to_error(l.L, -1) == error{error_kind::limit, "", false, {}});
  l.eval("local ok, err = pcall(error, {kind = 'canceled', message = 'stop'}) return err");
  CHECK(to_error(l.L, -1) == error{error_kind::canceled, "stop", false, {}});
}

TEST_CASE("to_error describes anything else as a runtime error") {
  struct example {
    const char* code;
    const char* message;
  };
  const example examples[] = {
      {"return 'boom'", "boom"},
      {"return 42", "42"},
      {"return 1.5", "1.5"},
      {"return 2.0", "2.0"},
      {"return -0.0", "-0.0"},
      {"return 1/0", "inf"},
      {"return nil", "(error object is a nil value)"},
      {"return false", "(error object is a boolean value)"},
      {"return {kind = 'bogus', message = 'x'}", "(error object is a table value)"},
      {"return {kind = 1}", "(error object is a table value)"},
      {"return setmetatable({}, {__tostring = function() error('no') end})",
       "(error object is a table value)"},
      {"return print", "(error object is a function value)"},
  };
  for (const example& ex : examples) {
    lua l;
    l.eval(ex.code);
    int top = lua_gettop(l.L);
    error e = to_error(l.L, -1);
    CHECK(lua_gettop(l.L) == top);
    CHECK_MESSAGE(e.kind == error_kind::runtime, ex.code);
    CHECK_MESSAGE(e.message == ex.message, ex.code);
    CHECK_FALSE(e.retryable);
  }
}

}  // namespace
}  // namespace luad::runtime
