// A process's cache of short strings it received lately (see string_cache.hpp).
#include "runtime/string_cache.hpp"

#include <cstring>
#include <new>
#include <utility>

namespace luad::runtime {

static_assert(string_cache::sets == 8, "push takes a set from the hash's top 3 bits");
static_assert(string_cache::doorkeeper_size == 16, "and doorkeeper places from bits 52..59");

std::uint64_t string_cache::hash(const char* s, std::size_t len) {
  // The first and last four bytes (overlapping under eight) and the length:
  // what tells topics and field names apart; one wide multiply, its halves
  // folded, so that every bit of the key reaches the top bits push uses.
  std::uint64_t key;
  if (len >= 4) {
    std::uint32_t head;
    std::uint32_t tail;
    std::memcpy(&head, s, 4);
    std::memcpy(&tail, s + len - 4, 4);
    key = (std::uint64_t{head} << 32) | tail;
  } else {
    key = std::uint64_t{static_cast<unsigned char>(s[0])} |
          std::uint64_t{static_cast<unsigned char>(s[len >> 1])} << 8 |
          std::uint64_t{static_cast<unsigned char>(s[len - 1])} << 16;
  }
  __extension__ using u128 = unsigned __int128;
  u128 product = static_cast<u128>(key ^ len) * 0x9E3779B97F4A7C15ULL;
  return static_cast<std::uint64_t>(product) ^ static_cast<std::uint64_t>(product >> 64);
}

namespace {

template <class T>
T load(const char* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// memcmp(a, b, len) == 0 for 1 <= len, inline up to 16 bytes (two loads that
// overlap when len is not a power of two), where the strings cached are.
bool same_bytes(const char* a, const char* b, std::size_t len) {
  if (len >= 8) {
    if (len > 16) return std::memcmp(a, b, len) == 0;
    return load<std::uint64_t>(a) == load<std::uint64_t>(b) &&
           load<std::uint64_t>(a + len - 8) == load<std::uint64_t>(b + len - 8);
  }
  if (len >= 4) {
    return load<std::uint32_t>(a) == load<std::uint32_t>(b) &&
           load<std::uint32_t>(a + len - 4) == load<std::uint32_t>(b + len - 4);
  }
  return a[0] == b[0] && a[len >> 1] == b[len >> 1] && a[len - 1] == b[len - 1];
}

}  // namespace

string_cache& string_cache::of(lua_State* L, string_cache*& home) {
  if (home) return *home;
  auto* cache = new (lua_newuserdatauv(L, sizeof(string_cache), 0)) string_cache();
  luaL_ref(L, LUA_REGISTRYINDEX);  // anchored for the state's life; pops it
  home = cache;
  return *cache;
}

void string_cache::push(lua_State* L, const char* s, std::size_t len) {
  if (len == 0 || len > max_length) {
    lua_pushlstring(L, s, len);
    return;
  }
  std::uint64_t h = hash(s, len);
  set& in = sets_[h >> 61];
  if (in.newer.len == len && same_bytes(in.newer.data, s, len)) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, in.newer.ref);
    return;
  }
  if (in.older.len == len && same_bytes(in.older.data, s, len)) {
    std::swap(in.newer, in.older);  // (each entry takes its registry key along)
    lua_rawgeti(L, LUA_REGISTRYINDEX, in.newer.ref);
    return;
  }
  const char* bytes = lua_pushlstring(L, s, len);
  // The doorkeeper: two places per string, written in turn, so that three
  // strings meeting at one place still find themselves at their other.
  auto tag = static_cast<std::uint32_t>(h);
  std::uint32_t& first = missed_[(h >> 56) & 15];
  std::uint32_t& second = missed_[(h >> 52) & 15];
  if (first != tag && second != tag) {  // not seen lately: remember it, anchor nothing
    (turn_ = !turn_) ? first = tag : second = tag;
    return;
  }
  (first == tag ? first : second) = 0;
  entry& e = in.older;  // the least recently used one goes
  lua_pushvalue(L, -1);
  if (e.ref == 0) {
    e.ref = luaL_ref(L, LUA_REGISTRYINDEX);  // may raise: e stays empty
  } else {
    lua_rawseti(L, LUA_REGISTRYINDEX, e.ref);  // an existing key: cannot raise
  }
  // Lua never moves a string, so its bytes stay where they are while the
  // registry holds it.
  e.data = bytes;
  e.len = static_cast<std::uint32_t>(len);
  std::swap(in.newer, in.older);
}

}  // namespace luad::runtime
