// Tests of runtime/string_cache.cpp: every push yields the bytes it was given,
// through slot collisions and full collections; what the cache anchors stays
// bounded however many distinct strings pass; messages decode the same with it.
#include "runtime/string_cache.hpp"

#include <doctest/doctest.h>

#include <string>

#include "runtime/message_codec.hpp"
#include "tests/lua_state.hpp"

namespace luad::runtime {
namespace {

using test::lua;

// Pushes `s` through the cache and checks the Lua string holds exactly `s`.
void push_checked(lua& l, string_cache& cache, const std::string& s) {
  cache.push(l.L, s.data(), s.size());
  std::size_t len = 0;
  const char* got = lua_tolstring(l.L, -1, &len);
  REQUIRE(got != nullptr);
  CHECK(std::string(got, len) == s);
  lua_pop(l.L, 1);
}

TEST_CASE("string cache: strings of one length sharing slots each come back as themselves") {
  lua l;
  string_cache* home = nullptr;
  string_cache& cache = string_cache::of(l.L, home);
  CHECK(home == &cache);
  CHECK(&string_cache::of(l.L, home) == &cache);  // made once
  // 400 five-byte strings over 8 sets of 2: most pushes meet other strings of
  // the same length in their set; each is pushed three times in a row (seen,
  // taken in, found), then met again after others took its place.
  for (int round = 0; round < 3; ++round) {
    for (int i = 0; i < 400; ++i) {
      std::string s = "k" + std::to_string(10000 + i).substr(1);
      push_checked(l, cache, s);
      push_checked(l, cache, s);
      push_checked(l, cache, s);
      push_checked(l, cache, "k" + std::to_string(10000 + (i * 7) % 400).substr(1));
      if (i % 50 == 0) lua_gc(l.L, LUA_GCCOLLECT);  // what left a slot may go now
    }
  }
  // Lengths at every edge of the slot hash and of what is cached.
  for (std::size_t len : {0, 1, 2, 3, 4, 5, 7, 8, 39, 40, 41, 63, 64, 200}) {
    std::string s(len, 'a');
    if (len > 0) s.back() = 'z';
    push_checked(l, cache, s);
    push_checked(l, cache, s);
    push_checked(l, cache, s);
    lua_gc(l.L, LUA_GCCOLLECT);
    push_checked(l, cache, s);
  }
}

TEST_CASE("string cache: however many strings pass, it anchors at most its entries") {
  lua l;
  string_cache* home = nullptr;
  string_cache& cache = string_cache::of(l.L, home);
  auto in_use = [&] {
    lua_gc(l.L, LUA_GCCOLLECT);
    return lua_gc(l.L, LUA_GCCOUNT) * 1024 + lua_gc(l.L, LUA_GCCOUNTB);
  };
  for (int i = 0; i < 1000; ++i) push_checked(l, cache, "warm-" + std::to_string(i));
  int before = in_use();
  for (int i = 0; i < 50000; ++i) {
    std::string s = "topic-" + std::to_string(i) + "-xxxxxxxx";
    push_checked(l, cache, s);
    push_checked(l, cache, s);  // a second sight in a row: it takes an entry
  }
  // A string of 40 bytes takes under 80 in the heap: 16 entries hold under
  // 2 KiB, and a registry key per string taken in would have grown it by MiB.
  CHECK(in_use() - before < 2048);
}

TEST_CASE("string cache: a message decodes the same with the cache as without it") {
  lua from;
  from.eval(
      "local t = {topic = 'tick', list = {'a', 'b', 'a', ('x'):rep(40), ('y'):rep(41), ''}}"
      " t.again = {topic = 'tick', list = {'a'}} return t");
  std::string bytes, why;
  REQUIRE(encode_message(from.L, -1, bytes, why, std::size_t{1} << 20));
  lua to;
  string_cache* home = nullptr;
  string_cache& cache = string_cache::of(to.L, home);
  for (int i = 0; i < 3; ++i) {
    push_message(to.L, bytes, &cache);
    lua_setglobal(to.L, "v");
    lua_gc(to.L, LUA_GCCOLLECT);
    to.run(
        "assert(v.topic == 'tick' and v.again.topic == 'tick' and v.again.list[1] == 'a')"
        "assert(table.concat(v.list, ',') == 'a,b,a,' .. ('x'):rep(40) .. ',' .. ('y'):rep(41) .. "
        "',')");
  }
}

}  // namespace
}  // namespace luad::runtime
