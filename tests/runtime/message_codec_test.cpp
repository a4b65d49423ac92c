// Tests of runtime/message_codec.cpp: round trips between two Lua states for every
// type, sharing and cycles, odd keys, big and sparse tables, and every refusal.
#include "runtime/message_codec.hpp"

#include <doctest/doctest.h>

#include "tests/lua_state.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <thread>

namespace luad::runtime {
namespace {

constexpr std::size_t no_limit = std::size_t{1} << 30;

using test::lua;

// Encodes the value on top of `from`, checking the stack is left as it was.
std::string encode_top(lua& from, std::size_t max_bytes = no_limit) {
  std::string bytes, why;
  int top = lua_gettop(from.L);
  REQUIRE_MESSAGE(encode_message(from.L, -1, bytes, why, max_bytes), why);
  CHECK(lua_gettop(from.L) == top);
  return bytes;
}

// Sends what `code` returns from one state into a fresh one as global `v`, then
// runs `check` there.
void round_trip(const char* code, const char* check) {
  lua from;
  from.eval(code);
  std::string bytes = encode_top(from);
  CHECK(valid_message(bytes));  // every encoding passes the validator
  lua to;
  push_message(to.L, bytes);
  CHECK(lua_gettop(to.L) == 1);
  lua_setglobal(to.L, "v");
  to.run(check);
}

// Encodes what `code` returns, expecting a refusal; returns the reason.
std::string refusal(const char* code, std::size_t max_bytes = no_limit) {
  lua from;
  from.eval(code);
  std::string bytes = "prefix", why;
  int top = lua_gettop(from.L);
  CHECK_FALSE(encode_message(from.L, -1, bytes, why, max_bytes));
  CHECK(bytes == "prefix");  // the buffer is left as it was
  CHECK(lua_gettop(from.L) == top);
  return why;
}

TEST_CASE("message_codec: scalars") {
  round_trip("return nil", "assert(v == nil)");
  round_trip("return true", "assert(v == true)");
  round_trip("return false", "assert(v == false)");
  round_trip("return 'hello'", "assert(v == 'hello')");
  round_trip("return ''", "assert(v == '')");
}

TEST_CASE("message_codec: integers of every width stay integers") {
  // Each width's edges, as a list that both sides build from the same source.
  const std::string list =
      "{0, 1, 127, 128, -1, -128, -129, 255, 32767, -32768, 32768, -32769, 2147483647,"
      " -2147483648, 2147483648, -2147483649, 1 << 40, math.maxinteger, math.mininteger}";
  std::string check = "local e = " + list +
                      " assert(#v == #e) for i = 1, #e do"
                      " assert(math.type(v[i]) == 'integer' and v[i] == e[i], i) end";
  round_trip(("return " + list).c_str(), check.c_str());
  round_trip("return 300", "assert(math.type(v) == 'integer' and v == 300)");
  round_trip("return math.mininteger", "assert(v == math.mininteger)");
}

TEST_CASE("message_codec: floats stay floats, bit for bit") {
  round_trip("return 1.0", "assert(math.type(v) == 'float' and v == 1)");
  round_trip("return 1", "assert(math.type(v) == 'integer')");
  round_trip("return -0.0", "assert(math.type(v) == 'float' and 1 / v == -math.huge)");
  round_trip("return 0/0", "assert(v ~= v)");
  round_trip("return math.huge", "assert(v == math.huge)");
  round_trip("return -math.huge", "assert(v == -math.huge)");
  round_trip("return 0.1", "assert(v == 0.1)");
  round_trip("return 2^63", "assert(math.type(v) == 'float' and v == 2^63)");
  round_trip("return {1, 1.0, [2.5] = 3.0}",
             "assert(math.type(v[1]) == 'integer' and math.type(v[2]) == 'float')"
             "assert(math.type(v[2.5]) == 'float' and v[2.5] == 3)");
}

TEST_CASE("message_codec: strings are binary-safe at every length") {
  round_trip("return 'a\\0b\\0'", "assert(v == 'a\\0b\\0' and #v == 4)");
  round_trip("return ('x'):rep(63)", "assert(v == ('x'):rep(63))");
  round_trip("return ('y'):rep(64)", "assert(v == ('y'):rep(64))");
  round_trip("return ('\\0\\255'):rep(50000)", "assert(v == ('\\0\\255'):rep(50000))");
}

TEST_CASE("message_codec: nested tables and every kind of key") {
  round_trip("return {topic = 'x', n = 42, list = {1, 2, {deep = {true}}}}",
             "assert(v.topic == 'x' and v.n == 42 and #v.list == 3)"
             "assert(v.list[3].deep[1] == true)");
  round_trip("return {[true] = 'yes', [false] = 'no', [1.5] = 'f', [-3] = 'neg', [0] = 'z'}",
             "assert(v[true] == 'yes' and v[false] == 'no' and v[1.5] == 'f')"
             "assert(v[-3] == 'neg' and v[0] == 'z')");
  round_trip("local k = {name = 'key'} return {[k] = 'value', k = k}",
             "assert(v[v.k] == 'value' and v.k.name == 'key')");
  round_trip("return {[{1}] = {2}}",
             "local k, x = next(v) assert(k[1] == 1 and x[1] == 2 and next(v, k) == nil)");
  round_trip("return {['a\\0b'] = 1, ['1'] = 'string one', [1] = 'int one'}",
             "assert(v['a\\0b'] == 1 and v['1'] == 'string one' and v[1] == 'int one')");
}

TEST_CASE("message_codec: metatables are not copied") {
  round_trip("return setmetatable({a = 1}, {__index = function() return 'meta' end})",
             "assert(getmetatable(v) == nil and v.a == 1 and v.b == nil)");
}

TEST_CASE("message_codec: shared subtables stay shared") {
  round_trip("local s = {1} return {a = s, b = s, c = {s}}",
             "assert(v.a == v.b and v.c[1] == v.a) v.a[1] = 9 assert(v.b[1] == 9)");
  round_trip("local s = {} local t = {} for i = 1, 100 do t[i] = {s, i} end return t",
             "for i = 1, 100 do assert(v[i][1] == v[1][1] and v[i][2] == i) end");
  round_trip(
      "local t = {} for i = 1, 100 do t[i] = {i} end for i = 1, 100 do t[100 + i] = t[i] end "
      "return t",
      "for i = 1, 100 do assert(v[i][1] == i and v[100 + i] == v[i]) end "
      "assert(v[1] ~= v[2])");
}

TEST_CASE("message_codec: cycles survive") {
  round_trip("local t = {} t.self = t return t", "assert(v.self == v)");
  round_trip("local a, b = {}, {} a.b = b b.a = a return {a}", "assert(v[1].b.a == v[1])");
  round_trip("local t = {} t[t] = t return t", "assert(v[v] == v)");
  round_trip("local t = {} for i = 1, 50 do t[i] = {parent = t} end return t",
             "for i = 1, 50 do assert(v[i].parent == v) end");
}

TEST_CASE("message_codec: big, sparse and holey tables") {
  round_trip("local t = {} for i = 1, 100000 do t[i] = i * 2 end return t",
             "assert(#v == 100000) for i = 1, 100000 do assert(v[i] == i * 2) end");
  round_trip("local t = {} for i = 1, 100000 do t['k' .. i] = i end return t",
             "local n = 0 for k, x in pairs(v) do n = n + 1 assert(k == 'k' .. x) end "
             "assert(n == 100000)");
  round_trip("return {[1] = 'a', [1000] = 'b', [1 << 40] = 'c', [-1] = 'd'}",
             "assert(v[1] == 'a' and v[1000] == 'b' and v[1 << 40] == 'c' and v[-1] == 'd')"
             "assert(v[2] == nil)");
  round_trip("return {1, nil, 3, nil, 5}",
             "assert(v[1] == 1 and v[2] == nil and v[3] == 3 and v[5] == 5)");
  round_trip("local t = {x = 1} t[2] = 'two' t[1] = 'one' return t",
             "assert(v[1] == 'one' and v[2] == 'two' and v.x == 1)");
  round_trip("return {1, 2, 3, x = 'x', [10] = 10, [2.5] = 'f'}",
             "assert(#v == 3 and v[3] == 3 and v.x == 'x' and v[10] == 10 and v[2.5] == 'f')");
  round_trip("return {}", "assert(type(v) == 'table' and next(v) == nil)");
}

TEST_CASE("message_codec: light userdata passes as the same pointer") {
  int anchor = 0;
  lua from;
  lua_createtable(from.L, 0, 2);
  lua_pushlightuserdata(from.L, &anchor);
  lua_setfield(from.L, -2, "pid");
  lua_pushlightuserdata(from.L, nullptr);
  lua_setfield(from.L, -2, "null");
  std::string bytes = encode_top(from);
  lua to;
  push_message(to.L, bytes);
  REQUIRE(lua_getfield(to.L, -1, "pid") == LUA_TLIGHTUSERDATA);
  CHECK(lua_touserdata(to.L, -1) == &anchor);
  REQUIRE(lua_getfield(to.L, -2, "null") == LUA_TLIGHTUSERDATA);
  CHECK(lua_touserdata(to.L, -1) == nullptr);
}

TEST_CASE("message_codec: the buffer is appended to, never cleared") {
  lua from;
  std::string bytes = "xy", why;
  from.eval("return {n = 1}");
  REQUIRE(encode_message(from.L, -1, bytes, why, no_limit));
  std::size_t first_end = bytes.size();
  from.eval("local t = {} t.t = t return t");
  REQUIRE(encode_message(from.L, -1, bytes, why, no_limit));
  CHECK(bytes.substr(0, 2) == "xy");
  lua to;
  push_message(to.L, std::string_view(bytes).substr(2, first_end - 2));
  push_message(to.L, std::string_view(bytes).substr(first_end));
  lua_setglobal(to.L, "cyclic");
  lua_setglobal(to.L, "first");
  to.run("assert(first.n == 1 and cyclic.t == cyclic)");
}

TEST_CASE("message_codec: decoding on another thread") {
  lua from;
  from.eval("local s = {'shared'} return {a = s, b = s, n = 7}");
  std::string bytes = encode_top(from);
  bool ok = false;
  std::thread([&] {
    lua to;
    push_message(to.L, bytes);
    lua_setglobal(to.L, "v");
    ok = luaL_dostring(to.L, "assert(v.a == v.b and v.a[1] == 'shared' and v.n == 7)") == LUA_OK;
  }).join();
  CHECK(ok);
}

TEST_CASE("message_codec: refusals say what and where") {
  CHECK(refusal("return print") == "cannot send a function");
  CHECK(refusal("return {handlers = {1, print}}") == "cannot send a function (at .handlers[2])");
  CHECK(refusal("return {['not an id'] = {x = coroutine.create(print)}}") ==
        "cannot send a thread (at [\"not an id\"].x)");
  CHECK(refusal("return {a = {[true] = {[2.5] = io.stdout}}}") ==
        "cannot send a full userdata (at .a[true][2.5])");
  CHECK(refusal("return {k = {[print] = 1}}") == "cannot send a function (at .k[<key>])");
  CHECK(refusal("return {[{f = print}] = 1}") == "cannot send a function (at [<key>].f)");
  CHECK(refusal("return {[{}] = {print}}") == "cannot send a function (at [<table>][1])");
}

TEST_CASE("message_codec: nesting is capped at 200 levels") {
  round_trip("local t = {} for i = 2, 200 do t = {t} end return t",
             "local d = 0 while v do d = d + 1 v = v[1] end assert(d == 200)");
  std::string why = refusal("local t = {} for i = 2, 201 do t = {t} end return t");
  CHECK(why.rfind("nesting deeper than 200 levels (at [1][1]", 0) == 0);
  // A deep cycle is not deep nesting: the second visit is a back-reference.
  round_trip("local t = {} t[1] = {{{t}}} return t", "assert(v[1][1][1][1] == v)");
}

TEST_CASE("message_codec: max_bytes bounds the whole encoding") {
  const char* code = "return {topic = 'x', body = ('z'):rep(100), list = {1, 2, 3}}";
  lua from;
  from.eval(code);
  std::size_t size = encode_top(from).size();
  encode_top(from, size);  // exactly at the limit is fine
  std::string expected = "message larger than " + std::to_string(size - 1) + " bytes";
  CHECK(refusal(code, size - 1) == expected);
  CHECK(refusal("return ('z'):rep(1000000)", 1000) == "message larger than 1000 bytes");
  CHECK(refusal("local t = {} for i = 1, 1000 do t[i] = i end return t", 100) ==
        "message larger than 100 bytes");
  CHECK(refusal("local t = {} t.t = t return t", 2) == "message larger than 2 bytes");
  CHECK(refusal("return 1", 0) == "message larger than 0 bytes");
}

}  // namespace

TEST_CASE("valid_message refuses truncated, padded and garbled encodings") {
  lua from;
  from.eval("local t = {1, 'two', {x = 3.5, y = true}} t.self = t t[4] = t[3] return t");
  std::string good = encode_top(from);
  REQUIRE(valid_message(good));
  for (std::size_t n = 0; n < good.size(); ++n) CHECK_FALSE(valid_message(good.substr(0, n)));
  CHECK_FALSE(valid_message(good + "x"));
  std::string bad_tag = good;
  bad_tag[1] = 0x3F;  // an unused tag
  CHECK_FALSE(valid_message(bad_tag));
  // Flipping any single byte never crashes the validator, and whatever it
  // accepts can be decoded.
  for (std::size_t i = 0; i < good.size(); ++i) {
    for (int bit = 0; bit < 8; ++bit) {
      std::string m = good;
      m[i] = static_cast<char>(m[i] ^ (1 << bit));
      if (valid_message(m)) {
        lua to;
        push_message(to.L, m);
        CHECK(lua_gettop(to.L) == 1);
      }
    }
  }
  // A huge declared table in a short message is refused before any allocation.
  std::string huge("\0\x0A\xFF\xFF\xFF\x7F\0\0\0\0", 10);
  CHECK_FALSE(valid_message(huge));
}

TEST_CASE("decode_value reads back what encode_value wrote, and nothing else") {
  std::string long_text(300, 'x');
  long_text[7] = '\0';
  value tree(value::map{
      {"nil", value()},
      {"flags", value::array{true, false}},
      {"ints", value::array{0, 127, 128, -1, std::int64_t{1} << 40, INT64_MIN, INT64_MAX}},
      {"float", 0.1},
      {"short", "abc"},
      {"long", long_text},
      {"nested", value::map{{"a", value::array{value::map{{"b", "c"}}}}}},
  });
  for (const value& v : {value(), value(7), value("s"), value(value::array{1, 2}), tree}) {
    std::string bytes;
    encode_value(v, bytes);
    std::optional<value> back = decode_value(bytes);
    REQUIRE(back);
    CHECK(*back == v);
  }
  std::string bytes;
  encode_value(tree, bytes);
  for (std::size_t cut = 0; cut < bytes.size(); cut += 7)  // every truncation is refused
    CHECK_FALSE(decode_value(std::string_view(bytes).substr(0, cut)));
  CHECK_FALSE(decode_value(bytes + "x"));  // and padding
  // Lua-only shapes: shared tables (back-references), pointers, mixed tables.
  for (const char* code :
       {"local t = {} return {t, t}", "return {1, 2, x = 3}", "return {[2.5] = 1}"}) {
    lua from;
    from.eval(code);
    CHECK_FALSE(decode_value(encode_top(from)));
  }
  lua from;
  lua_pushlightuserdata(from.L, &bytes);
  CHECK_FALSE(decode_value(encode_top(from)));
}

TEST_CASE("decode_integer reads integer encodings only") {
  for (std::int64_t v : {std::int64_t{0}, std::int64_t{127}, std::int64_t{128}, std::int64_t{-1},
                         std::int64_t{-40000}, std::int64_t{1} << 40, INT64_MIN, INT64_MAX}) {
    lua from;
    lua_pushinteger(from.L, v);
    std::string bytes = encode_top(from);
    std::int64_t out = 0;
    CHECK(decode_integer(bytes, out));
    CHECK(out == v);
    std::string plain;
    encode_value(value(v), plain);
    CHECK(decode_integer(plain, out));
    CHECK(out == v);
  }
  for (const char* code : {"return 1.5", "return '1'", "return {1}", "return nil"}) {
    lua from;
    from.eval(code);
    std::int64_t out = 0;
    CHECK_FALSE(decode_integer(encode_top(from), out));
  }
}

}  // namespace luad::runtime
