// A process's cache of short strings it received lately (topics, table keys,
// small values), so that a message's recurring strings enter its state without
// being interned again: luad's counterpart of BEAM's atoms, one per state.
//
// DESIGN. Stock Lua interns every string of up to 40 bytes that enters a state
// (hash the bytes, walk a bucket, compare): 17 % of a one-way run. The cache has
// `sets` sets of two entries (least recently used out), in a full userdata of
// the process's own heap; an entry keeps the bytes' address and length of a Lua
// string anchored at an integer key of the registry (its array part: one
// indexed load to push it). A hit is a length check, a memcmp and lua_rawgeti.
// A miss interns as before; the string takes an entry only on a second miss
// soon after the first (a doorkeeper of 16 recent misses' hashes, two places
// per string, chosen by other bits than its set, so that strings sharing a set
// or a place do not keep each other out), so a stream of distinct strings
// (ids, counters) costs a hash and a compare each, not a registry write and
// its GC barrier. Nothing is shared between states, so isolation is
// unchanged; what the cache holds is bounded (2 x sets strings of at most 40
// bytes) and charged to the process. An attacker who makes strings collide
// (same length, head and tail) only makes them miss: every byte is compared.
#pragma once

#include <cstddef>
#include <cstdint>

#include "runtime/lua.hpp"

namespace luad::runtime {

class string_cache {
 public:
  static constexpr unsigned sets = 8;
  static constexpr unsigned doorkeeper_size = 16;
  /// Strings longer than this are not interned by Lua (LUAI_MAXSHORTLEN).
  static constexpr std::size_t max_length = 40;

  /// The cache `home` points to, made in L's state on first use (home is a
  /// field of the process; the cache lives as long as its state). May raise
  /// Lua's memory error.
  static string_cache& of(lua_State* L, string_cache*& home);

  /// Pushes the string s[0..len): the cached one when it is there, else a new
  /// Lua string, which takes an entry if it missed just before. May raise
  /// Lua's memory error.
  void push(lua_State* L, const char* s, std::size_t len);

 private:
  struct entry {
    const char* data = nullptr;  // the anchored string's bytes
    std::uint32_t len = 0;       // 0: empty
    int ref = 0;                 // its registry key, once it has one
  };
  struct set {
    entry newer, older;
  };
  static std::uint64_t hash(const char* s, std::size_t len);
  set sets_[sets];
  std::uint32_t missed_[doorkeeper_size] = {};  // low halves of recent misses' hashes
  bool turn_ = false;                           // which of its two places a miss takes
};

/// Pushes s[0..len) through `cache` when the receiver has one, else as a new
/// Lua string (interned by Lua as usual).
inline void push_received_string(lua_State* L, string_cache* cache, const char* s,
                                 std::size_t len) {
  if (cache) {
    cache->push(L, s, len);
  } else {
    lua_pushlstring(L, s, len);
  }
}

}  // namespace luad::runtime
