// The bounded table functions: table.move, insert, remove, sort and concat,
// each polling runtime::check_interrupt while it loops.
//
// DESIGN. Their loops run in C, where no Lua hook (so neither preemption nor
// a kill) can reach them, and a `__len` metamethod sets how long they run: a
// table claiming 2^31 elements whose `__index`/`__newindex` are C functions
// kept stock table.sort busy for minutes without allocating a byte. Each
// function here follows Lua 5.4.4's ltablib.c argument by argument (same
// checks in the same order, same messages, same algorithm: sort is the same
// quicksort with the same pivots, so the order of equal elements and the
// calls made to a comparator do not change) and adds a check_interrupt every
// 1,024 steps. No C++ object with a destructor lives here: check_interrupt
// may longjmp out of any loop.
#include <chrono>
#include <climits>

#include "runtime/bounded_lib.hpp"
#include "runtime/interrupt.hpp"

namespace luad::runtime {

namespace {

// Iterations of a C loop between two interrupt checks.
constexpr lua_Integer k_poll_every = 1024;

// Every k_poll_every iterations: a `__len` can make a loop as long as it likes.
void poll_at(lua_State* L, lua_Integer i) {
  if ((i & (k_poll_every - 1)) == 0) check_interrupt(L);
}

enum : int { tab_r = 1, tab_w = 2, tab_l = 4 };

bool has_field(lua_State* L, const char* key, int n) {
  lua_pushstring(L, key);
  return lua_rawget(L, -n) != LUA_TNIL;
}

// ltablib's checktab: a table, or a value whose metatable has what is needed.
void check_table(lua_State* L, int arg, int what) {
  if (lua_type(L, arg) == LUA_TTABLE) return;
  int n = 1;
  if (lua_getmetatable(L, arg) && (!(what & tab_r) || has_field(L, "__index", ++n)) &&
      (!(what & tab_w) || has_field(L, "__newindex", ++n)) &&
      (!(what & tab_l) || has_field(L, "__len", ++n))) {
    lua_pop(L, n);
  } else {
    luaL_checktype(L, arg, LUA_TTABLE);
  }
}

lua_Integer length_of(lua_State* L, int arg, int what) {
  check_table(L, arg, what | tab_l);
  return luaL_len(L, arg);
}

// --- move, insert, remove ---------------------------------------------------

int tab_insert(lua_State* L) {
  lua_Integer e = length_of(L, 1, tab_r | tab_w);
  e = static_cast<lua_Integer>(static_cast<lua_Unsigned>(e) + 1u);
  lua_Integer pos;
  switch (lua_gettop(L)) {
    case 2: pos = e; break;
    case 3: {
      pos = luaL_checkinteger(L, 2);
      luaL_argcheck(L, static_cast<lua_Unsigned>(pos) - 1u < static_cast<lua_Unsigned>(e), 2,
                    "position out of bounds");
      for (lua_Integer i = e; i > pos; --i) {
        poll_at(L, i);
        lua_geti(L, 1, i - 1);
        lua_seti(L, 1, i);
      }
      break;
    }
    default: return luaL_error(L, "wrong number of arguments to 'insert'");
  }
  lua_seti(L, 1, pos);
  return 0;
}

int tab_remove(lua_State* L) {
  lua_Integer size = length_of(L, 1, tab_r | tab_w);
  lua_Integer pos = luaL_optinteger(L, 2, size);
  if (pos != size)
    luaL_argcheck(L, static_cast<lua_Unsigned>(pos) - 1u <= static_cast<lua_Unsigned>(size), 1,
                  "position out of bounds");
  lua_geti(L, 1, pos);
  for (; pos < size; ++pos) {
    poll_at(L, pos);
    lua_geti(L, 1, pos + 1);
    lua_seti(L, 1, pos);
  }
  lua_pushnil(L);
  lua_seti(L, 1, pos);
  return 1;
}

int tab_move(lua_State* L) {
  lua_Integer f = luaL_checkinteger(L, 2);
  lua_Integer e = luaL_checkinteger(L, 3);
  lua_Integer t = luaL_checkinteger(L, 4);
  int tt = !lua_isnoneornil(L, 5) ? 5 : 1;
  check_table(L, 1, tab_r);
  check_table(L, tt, tab_w);
  if (e >= f) {
    luaL_argcheck(L, f > 0 || e < LUA_MAXINTEGER + f, 3, "too many elements to move");
    lua_Integer n = e - f + 1;
    luaL_argcheck(L, t <= LUA_MAXINTEGER - n + 1, 4, "destination wrap around");
    if (t > e || t <= f || (tt != 1 && !lua_compare(L, 1, tt, LUA_OPEQ))) {
      for (lua_Integer i = 0; i < n; ++i) {
        poll_at(L, i + 1);
        lua_geti(L, 1, f + i);
        lua_seti(L, tt, t + i);
      }
    } else {
      for (lua_Integer i = n - 1; i >= 0; --i) {
        poll_at(L, i + 1);
        lua_geti(L, 1, f + i);
        lua_seti(L, tt, t + i);
      }
    }
  }
  lua_pushvalue(L, tt);
  return 1;
}

// --- concat -----------------------------------------------------------------

// Stock concat is bounded by the buffer it fills, but only loosely: with
// `__index = rawlen` every phantom element adds one byte ("0"), so a 1 GiB
// heap is a minute of C. Polled like the rest.
void add_field(lua_State* L, luaL_Buffer* b, lua_Integer i) {
  lua_geti(L, 1, i);
  if (!lua_isstring(L, -1))
    luaL_error(L, "invalid value (%s) at index %I in table for 'concat'", luaL_typename(L, -1),
               static_cast<LUAI_UACINT>(i));
  luaL_addvalue(b);
}

int tab_concat(lua_State* L) {
  luaL_Buffer b;
  lua_Integer last = length_of(L, 1, tab_r);
  std::size_t lsep;
  const char* sep = luaL_optlstring(L, 2, "", &lsep);
  lua_Integer i = luaL_optinteger(L, 3, 1);
  last = luaL_optinteger(L, 4, last);
  luaL_buffinit(L, &b);
  for (; i < last; ++i) {
    poll_at(L, i);
    add_field(L, &b, i);
    luaL_addlstring(&b, sep, lsep);
  }
  if (i == last) add_field(L, &b, i);
  luaL_pushresult(&b);
  return 1;
}

// --- sort -------------------------------------------------------------------

using index_t = unsigned int;

// Past this many elements a partition picks a random pivot once one went badly.
constexpr index_t k_random_limit = 100u;

// One sort call: its state, and the comparisons made so far (for the poll).
struct sorter {
  lua_State* L;
  lua_Integer compares;
};

// Stock mixes clock() and time(); any cheap changing number does.
unsigned int random_pivot_seed() {
  auto ticks =
      static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  return static_cast<unsigned int>(ticks ^ (ticks >> 32));
}

// Pops the two values on top into t[i] (the top one) and t[j].
void set2(lua_State* L, index_t i, index_t j) {
  lua_seti(L, 1, i);
  lua_seti(L, 1, j);
}

// a < b, by the comparator at index 2 or by `<`; a and b are negative indices.
bool less(sorter& s, int a, int b) {
  lua_State* L = s.L;
  poll_at(L, ++s.compares);
  if (lua_isnil(L, 2)) return lua_compare(L, a, b, LUA_OPLT);
  lua_pushvalue(L, 2);
  lua_pushvalue(L, a - 1);  // the function pushed above shifts a by one
  lua_pushvalue(L, b - 2);  // and b by two
  lua_call(L, 2, 1);
  bool res = lua_toboolean(L, -1);
  lua_pop(L, 1);
  return res;
}

// With the pivot P on top and at t[up - 1]: partitions t[lo..up] around P
// and returns P's final index.
index_t partition(sorter& s, index_t lo, index_t up) {
  lua_State* L = s.L;
  index_t i = lo;
  index_t j = up - 1;
  for (;;) {
    while (lua_geti(L, 1, ++i), less(s, -1, -2)) {  // a[i] < P
      if (i == up - 1) luaL_error(L, "invalid order function for sorting");
      lua_pop(L, 1);
    }
    while (lua_geti(L, 1, --j), less(s, -3, -1)) {  // P < a[j]
      if (j < i) luaL_error(L, "invalid order function for sorting");
      lua_pop(L, 1);
    }
    if (j < i) {
      lua_pop(L, 1);
      set2(L, up - 1, i);  // the pivot goes between the halves
      return i;
    }
    set2(L, i, j);
  }
}

index_t choose_pivot(index_t lo, index_t up, unsigned int rnd) {
  index_t r4 = (up - lo) / 4;
  return rnd % (r4 * 2) + (lo + r4);
}

// Sorts t[lo..up]: recursion on the smaller half, a loop on the larger, so
// the C depth stays under log2(n).
void sort_range(sorter& s, index_t lo, index_t up, unsigned int rnd) {
  lua_State* L = s.L;
  while (lo < up) {
    lua_geti(L, 1, lo);
    lua_geti(L, 1, up);
    if (less(s, -1, -2))  // a[up] < a[lo]
      set2(L, lo, up);
    else
      lua_pop(L, 2);
    if (up - lo == 1) break;
    index_t p = (up - lo < k_random_limit || rnd == 0) ? (lo + up) / 2 : choose_pivot(lo, up, rnd);
    lua_geti(L, 1, p);
    lua_geti(L, 1, lo);
    if (less(s, -2, -1)) {  // a[p] < a[lo]
      set2(L, p, lo);
    } else {
      lua_pop(L, 1);
      lua_geti(L, 1, up);
      if (less(s, -1, -2))  // a[up] < a[p]
        set2(L, p, up);
      else
        lua_pop(L, 2);
    }
    if (up - lo == 2) break;
    lua_geti(L, 1, p);  // the median of three is the pivot
    lua_pushvalue(L, -1);
    lua_geti(L, 1, up - 1);
    set2(L, p, up - 1);
    p = partition(s, lo, up);
    index_t smaller;
    if (p - lo < up - p) {
      sort_range(s, lo, p - 1, rnd);
      smaller = p - lo;
      lo = p + 1;
    } else {
      sort_range(s, p + 1, up, rnd);
      smaller = up - p;
      up = p - 1;
    }
    if ((up - lo) / 128 > smaller) rnd = random_pivot_seed();  // too unbalanced
  }
}

int tab_sort(lua_State* L) {
  lua_Integer n = length_of(L, 1, tab_r | tab_w);
  if (n > 1) {
    luaL_argcheck(L, n < INT_MAX, 1, "array too big");
    if (!lua_isnoneornil(L, 2)) luaL_checktype(L, 2, LUA_TFUNCTION);
    lua_settop(L, 2);
    sorter s{L, 0};
    sort_range(s, 1, static_cast<index_t>(n), 0);
  }
  return 0;
}

}  // namespace

void install_bounded_table(lua_State* L, int idx) {
  static const luaL_Reg fns[] = {{"move", tab_move}, {"insert", tab_insert}, {"remove", tab_remove},
                                 {"sort", tab_sort}, {"concat", tab_concat}, {nullptr, nullptr}};
  lua_pushvalue(L, idx);
  luaL_setfuncs(L, fns, 0);
  lua_pop(L, 1);
}

}  // namespace luad::runtime
