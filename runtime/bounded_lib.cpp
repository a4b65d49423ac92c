// The bounded string functions and load: string.find/match/gmatch/gsub on our
// own matcher (runtime/pattern.hpp), string.rep without its empty-result
// loop and with doubling copies, and load in polled pieces. The table functions are in
// runtime/bounded_table.cpp.
//
// DESIGN. The bindings follow Lua 5.4.4's lstrlib.c and lbaselib.c argument by
// argument (same checks in the same order, same messages), so a script sees
// no difference but time. No C++ object with a destructor lives in them: the
// matcher's poll and check_interrupt may longjmp out of any loop here.
#include "runtime/bounded_lib.hpp"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <climits>
#include <cstdint>
#include <cstring>
#include <new>

#include "runtime/bytecode_check.hpp"
#include "runtime/code.hpp"
#include "runtime/interrupt.hpp"
#include "runtime/lua_value.hpp"
#include "runtime/pattern.hpp"

namespace luad::runtime {

namespace {

namespace pt = pattern;

std::atomic<std::uint64_t> g_budget{pt::default_budget};

void poll_state(void* L) { check_interrupt(static_cast<lua_State*>(L)); }

std::uint64_t budget_for(std::size_t subject_len) {
  return g_budget.load(std::memory_order_relaxed) + 16 * static_cast<std::uint64_t>(subject_len);
}

// The budget fault: a structured error of kind `limit`. Static, so nothing
// with a destructor is alive when lua_error jumps.
const error k_budget_error{error_kind::limit, pt::message(pt::fault::budget), false, {}};

int raise_fault(lua_State* L, const pt::state& ms) {
  if (ms.failed == pt::fault::budget) {
    push_error(L, k_budget_error);
    return lua_error(L);
  }
  if (ms.failed == pt::fault::capture_index)
    return luaL_error(L, "invalid capture index %%%d", ms.fault_index);
  return luaL_error(L, "%s", pt::message(ms.failed));
}

// Lua's posrelatI: a relative initial position, clipped to [1, inf).
std::size_t start_index(lua_Integer pos, std::size_t len) {
  if (pos > 0) return static_cast<std::size_t>(pos);
  if (pos == 0) return 1;
  if (pos < -static_cast<lua_Integer>(len)) return 1;
  return len + static_cast<std::size_t>(pos) + 1;
}

// --- captures ---------------------------------------------------------------

// Capture `i` of the match s..e: its length and start, or cap_position with
// the position pushed. Raises for a bad index or an unfinished capture.
std::ptrdiff_t capture_of(lua_State* L, const pt::state& ms, int i, const char* s, const char* e,
                          const char** cap) {
  if (i >= ms.level) {
    if (i != 0) luaL_error(L, "invalid capture index %%%d", i + 1);
    *cap = s;
    return e - s;
  }
  std::ptrdiff_t len = ms.capture[i].len;
  *cap = ms.capture[i].init;
  if (len == pt::cap_unfinished) {
    luaL_error(L, "unfinished capture");
  } else if (len == pt::cap_position) {
    lua_pushinteger(L, (ms.capture[i].init - ms.src_init) + 1);
  }
  return len;
}

void push_capture(lua_State* L, const pt::state& ms, int i, const char* s, const char* e) {
  const char* cap;
  std::ptrdiff_t len = capture_of(L, ms, i, s, e, &cap);
  if (len != pt::cap_position) lua_pushlstring(L, cap, static_cast<std::size_t>(len));
}

int push_captures(lua_State* L, const pt::state& ms, const char* s, const char* e) {
  int n = (ms.level == 0 && s) ? 1 : ms.level;
  luaL_checkstack(L, n, "too many captures");
  for (int i = 0; i < n; ++i) push_capture(L, ms, i, s, e);
  return n;
}

// --- find, match, gmatch ----------------------------------------------------

int find_or_match(lua_State* L, bool find) {
  std::size_t ls, lp;
  const char* s = luaL_checklstring(L, 1, &ls);
  const char* p = luaL_checklstring(L, 2, &lp);
  std::size_t init = start_index(luaL_optinteger(L, 3, 1), ls) - 1;
  if (init > ls) {
    luaL_pushfail(L);
    return 1;
  }
  if (find && (lua_toboolean(L, 4) || !pt::has_specials(p, lp))) {
    if (const char* at = pt::find_plain(s + init, ls - init, p, lp)) {
      lua_pushinteger(L, (at - s) + 1);
      lua_pushinteger(L, static_cast<lua_Integer>((at - s) + lp));
      return 2;
    }
    luaL_pushfail(L);
    return 1;
  }
  pt::state ms;
  const char* s1 = s + init;
  bool anchor = *p == '^';
  if (anchor) {
    ++p;
    --lp;
  }
  pt::prepare(ms, s, ls, p, lp, budget_for(ls), poll_state, L);
  do {
    if (const char* e = pt::match_at(ms, s1, p)) {
      if (!find) return push_captures(L, ms, s1, e);
      lua_pushinteger(L, (s1 - s) + 1);
      lua_pushinteger(L, e - s);
      return push_captures(L, ms, nullptr, nullptr) + 2;
    }
    if (ms.failed != pt::fault::none) return raise_fault(L, ms);
  } while (s1++ < ms.src_end && !anchor);
  luaL_pushfail(L);
  return 1;
}

int str_find(lua_State* L) { return find_or_match(L, true); }
int str_match(lua_State* L) { return find_or_match(L, false); }

struct gmatch_state {
  const char* src;
  const char* p;
  const char* lastmatch;
  pt::state ms;
};

int gmatch_step(lua_State* L) {
  auto* gm = static_cast<gmatch_state*>(lua_touserdata(L, lua_upvalueindex(3)));
  // A fresh budget per step, polling the state that calls (any coroutine).
  pt::prepare(gm->ms, gm->ms.src_init, static_cast<std::size_t>(gm->ms.src_end - gm->ms.src_init),
              gm->p, static_cast<std::size_t>(gm->ms.p_end - gm->p),
              budget_for(static_cast<std::size_t>(gm->ms.src_end - gm->src)), poll_state, L);
  for (const char* src = gm->src; src <= gm->ms.src_end; ++src) {
    const char* e = pt::match_at(gm->ms, src, gm->p);
    if (e && e != gm->lastmatch) {
      gm->src = gm->lastmatch = e;
      return push_captures(L, gm->ms, src, e);
    }
    if (gm->ms.failed != pt::fault::none) return raise_fault(L, gm->ms);
  }
  return 0;
}

int str_gmatch(lua_State* L) {
  std::size_t ls, lp;
  const char* s = luaL_checklstring(L, 1, &ls);
  const char* p = luaL_checklstring(L, 2, &lp);
  std::size_t init = start_index(luaL_optinteger(L, 3, 1), ls) - 1;
  lua_settop(L, 2);  // the closure keeps both strings alive
  auto* gm = new (lua_newuserdatauv(L, sizeof(gmatch_state), 0)) gmatch_state{};
  if (init > ls) init = ls + 1;
  pt::prepare(gm->ms, s, ls, p, lp, 0, nullptr, nullptr);
  gm->src = s + init;
  gm->p = p;
  gm->lastmatch = nullptr;
  lua_pushcclosure(L, gmatch_step, 3);
  return 1;
}

// --- gsub -------------------------------------------------------------------

// Appends the replacement string (argument 3) with its %0-%9 and %% expanded.
void add_string(lua_State* L, const pt::state& ms, luaL_Buffer* b, const char* s, const char* e) {
  std::size_t l;
  const char* news = lua_tolstring(L, 3, &l);
  const char* p;
  while ((p = static_cast<const char*>(std::memchr(news, '%', l))) != nullptr) {
    luaL_addlstring(b, news, static_cast<std::size_t>(p - news));
    ++p;
    if (*p == '%') {
      luaL_addchar(b, *p);
    } else if (*p == '0') {
      luaL_addlstring(b, s, static_cast<std::size_t>(e - s));
    } else if (std::isdigit(static_cast<unsigned char>(*p))) {
      const char* cap;
      std::ptrdiff_t len = capture_of(L, ms, *p - '1', s, e, &cap);
      if (len == pt::cap_position)
        luaL_addvalue(b);
      else
        luaL_addlstring(b, cap, static_cast<std::size_t>(len));
    } else {
      luaL_error(L, "invalid use of '%c' in replacement string", '%');
    }
    l -= static_cast<std::size_t>(p + 1 - news);
    news = p + 1;
  }
  luaL_addlstring(b, news, l);
}

// Appends the replacement for match s..e; true if the subject changed.
bool add_value(lua_State* L, const pt::state& ms, luaL_Buffer* b, const char* s, const char* e,
               int tr) {
  switch (tr) {
    case LUA_TFUNCTION: {
      lua_pushvalue(L, 3);
      int n = push_captures(L, ms, s, e);
      lua_call(L, n, 1);
      break;
    }
    case LUA_TTABLE:
      push_capture(L, ms, 0, s, e);
      lua_gettable(L, 3);
      break;
    default: add_string(L, ms, b, s, e); return true;
  }
  if (!lua_toboolean(L, -1)) {  // nil or false: keep the original text
    lua_pop(L, 1);
    luaL_addlstring(b, s, static_cast<std::size_t>(e - s));
    return false;
  }
  if (!lua_isstring(L, -1)) luaL_error(L, "invalid replacement value (a %s)", luaL_typename(L, -1));
  luaL_addvalue(b);
  return true;
}

int str_gsub(lua_State* L) {
  std::size_t srcl, lp;
  const char* src = luaL_checklstring(L, 1, &srcl);
  const char* p = luaL_checklstring(L, 2, &lp);
  const char* lastmatch = nullptr;
  int tr = lua_type(L, 3);
  lua_Integer max_s = luaL_optinteger(L, 4, static_cast<lua_Integer>(srcl) + 1);
  bool anchor = *p == '^';
  lua_Integer n = 0;
  bool changed = false;
  luaL_argexpected(
      L, tr == LUA_TNUMBER || tr == LUA_TSTRING || tr == LUA_TFUNCTION || tr == LUA_TTABLE, 3,
      "string/function/table");
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  if (anchor) {
    ++p;
    --lp;
  }
  pt::state ms;
  pt::prepare(ms, src, srcl, p, lp, budget_for(srcl), poll_state, L);
  while (n < max_s) {
    const char* e = pt::match_at(ms, src, p);
    if (e && e != lastmatch) {
      ++n;
      changed = add_value(L, ms, &b, src, e, tr) || changed;
      src = lastmatch = e;
    } else if (ms.failed != pt::fault::none) {
      return raise_fault(L, ms);
    } else if (src < ms.src_end) {
      luaL_addchar(&b, *src++);
    } else {
      break;
    }
    if (anchor) break;
  }
  if (!changed) {
    lua_pushvalue(L, 1);
  } else {
    luaL_addlstring(&b, src, static_cast<std::size_t>(ms.src_end - src));
    luaL_pushresult(&b);
  }
  lua_pushinteger(L, n);
  return 2;
}

// --- string.rep -------------------------------------------------------------

// Stock rep loops n times even when every copy is empty ((""):rep(1e10) ran
// 36 s), and copies one piece per iteration: ("x"):rep(10 << 20) was 10M
// one-byte memcpy calls, 80 ms in one C call that cannot be preempted. Here
// the result is the first n * (l + lsep) - lsep bytes of "s sep s sep ...":
// write one period, then double the written prefix until it is all there.
int str_rep(lua_State* L) {
  std::size_t l, lsep;
  const char* s = luaL_checklstring(L, 1, &l);
  lua_Integer n = luaL_checkinteger(L, 2);
  const char* sep = luaL_optlstring(L, 3, "", &lsep);
  constexpr auto k_max = static_cast<std::size_t>(INT_MAX);  // lstrlib.c's MAXSIZE
  if (n <= 0 || l + lsep == 0) {
    lua_pushliteral(L, "");
    return 1;
  }
  if (l + lsep < l || l + lsep > k_max / static_cast<std::size_t>(n))
    return luaL_error(L, "resulting string too large");
  std::size_t period = l + lsep;
  std::size_t total = static_cast<std::size_t>(n) * period - lsep;
  luaL_Buffer b;
  char* p = luaL_buffinitsize(L, &b, total);
  std::memcpy(p, s, l);
  std::size_t done = l;
  if (done < total) {  // then n > 1: the separator fits
    std::memcpy(p + done, sep, lsep);
    done += lsep;
  }
  while (done < total) {
    std::size_t step = std::min(done, total - done);
    std::memcpy(p + done, p, step);
    done += step;
  }
  luaL_pushresultsize(&b, total);
  return 1;
}

// --- load -----------------------------------------------------------------

void poll_load(lua_State* L, void*) { check_interrupt(L); }

// nil and the limit message when `len` is over the source limit; 0 otherwise.
int refuse_size(lua_State* L, std::size_t len) {
  std::size_t limit = source_limit();
  if (limit == 0 || len <= limit) return 0;
  lua_pushnil(L);
  lua_pushfstring(L, "source is %I bytes, more than the limit of %I ([limits] source)",
                  static_cast<lua_Integer>(len), static_cast<lua_Integer>(limit));
  return 2;
}

void set_functions(lua_State* L, int idx, const luaL_Reg* fns) {
  idx = lua_absindex(L, idx);
  for (; fns->name; ++fns) {
    lua_pushcfunction(L, fns->func);
    lua_setfield(L, idx, fns->name);
  }
}

struct dump_state {
  bool started = false;
  luaL_Buffer b;
};

int dump_to_buffer(lua_State* L, const void* p, std::size_t sz, void* ud) {
  auto* d = static_cast<dump_state*>(ud);
  if (!d->started) {  // lazily, as lstrlib's str_dump: lua_dump wants the function on top
    d->started = true;
    luaL_buffinit(L, &d->b);
  }
  luaL_addlstring(&d->b, static_cast<const char*>(p), sz);
  return 0;
}

// With the function just compiled on top: true if it passes check_read_chains;
// else replaces it with the error message and returns false.
bool chains_ok(lua_State* L) {
  dump_state d;
  lua_dump(L, dump_to_buffer, &d, 1);
  if (!d.started) return true;
  luaL_pushresult(&d.b);
  std::size_t n;
  const char* dump = lua_tolstring(L, -1, &n);
  const char* why = check_read_chains(dump, n);
  lua_pop(L, 1);
  if (!why) return true;
  lua_pop(L, 1);
  lua_pushstring(L, why);
  return false;
}

}  // namespace

// Text chunks only; a reader function is read to the end first (into a
// buffer: linear, and refused as soon as it passes the source limit).
int bounded_load(lua_State* L) {
  std::size_t len;
  const char* chunk;
  const char* name;
  int env = lua_isnone(L, 4) ? 0 : 4;
  if (lua_type(L, 1) == LUA_TSTRING) {
    chunk = lua_tolstring(L, 1, &len);
    name = luaL_optstring(L, 2, chunk);
  } else {
    luaL_checktype(L, 1, LUA_TFUNCTION);
    name = luaL_optstring(L, 2, "=(load)");
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    std::size_t total = 0;
    for (;;) {
      lua_pushvalue(L, 1);
      lua_call(L, 0, 1);
      if (lua_isnil(L, -1) || (lua_type(L, -1) == LUA_TSTRING && lua_rawlen(L, -1) == 0)) {
        lua_pop(L, 1);
        break;
      }
      if (lua_type(L, -1) != LUA_TSTRING)
        return luaL_error(L, "reader function must return a string");
      total += lua_rawlen(L, -1);
      if (int n = refuse_size(L, total)) return n;
      luaL_addvalue(&b);
    }
    luaL_pushresult(&b);
    chunk = lua_tolstring(L, -1, &len);
  }
  if (int n = refuse_size(L, len)) return n;
  if (load_text(L, chunk, len, name, poll_load, nullptr) != LUA_OK || !chains_ok(L)) {
    check_interrupt(L);  // a kill that stopped the parse is not load's answer
    lua_pushnil(L);
    lua_insert(L, -2);
    return 2;
  }
  if (env) {
    lua_pushvalue(L, env);
    if (!lua_setupvalue(L, -2, 1)) lua_pop(L, 1);
  }
  return 1;
}

void install_bounded_string(lua_State* L, int idx) {
  idx = lua_absindex(L, idx);
  static const luaL_Reg fns[] = {{"find", str_find}, {"match", str_match}, {"gmatch", str_gmatch},
                                 {"gsub", str_gsub}, {"rep", str_rep},     {nullptr, nullptr}};
  set_functions(L, idx, fns);
}

void set_pattern_budget(std::uint64_t steps) { g_budget.store(steps, std::memory_order_relaxed); }
std::uint64_t pattern_budget() { return g_budget.load(std::memory_order_relaxed); }

}  // namespace luad::runtime
