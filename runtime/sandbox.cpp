// The sandbox: which globals a script sees, opened lazily on first use, and the
// replacements for pcall, xpcall, load, print, rawset, collectgarbage and the
// coroutine functions that keep scheduler yields and kills out of user code.
//
// DESIGN. A fresh state has only two small metatables: the globals table's,
// whose __index materialises a safe global on first read, and the string
// metatable, whose __index opens the string library on the first method call.
// Standard C functions are captured once from a template state (they are plain
// code, valid in any state). Library tables reach scripts as read-only proxies.
// A yield for the scheduler inside a user coroutine propagates out through our
// coroutine.resume/wrap (each yields its own thread with a continuation) and is
// resumed back down the same chain, so user code never sees it.
#include "runtime/sandbox.hpp"

#include <pthread.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <string_view>
#include <vector>

#include "runtime/bounded_lib.hpp"
#include "runtime/logging.hpp"
#include "runtime/module.hpp"
#include "runtime/process.hpp"

namespace luad::runtime {

namespace {

int readonly_key;  // its address marks read-only proxy metatables
const char* const k_string_lib = "luad.lib.string";

enum class lib : std::uint8_t { none, string, table, math, utf8, coroutine };

struct global_entry {
  const char* name;
  lua_CFunction fn;  // for plain functions
  lib library;       // for libraries
};

std::vector<global_entry> g_globals;  // sorted by name; frozen after init
std::vector<std::pair<const char*, lua_CFunction>> g_string_meta;  // arithmetic metamethods
lua_CFunction g_co_create, g_co_status, g_co_running, g_rawset, g_collect, g_setmetatable;

// --- read-only proxies ------------------------------------------------------

int readonly_newindex(lua_State* L) {
  lua_getmetatable(L, 1);
  lua_getfield(L, -1, "__name");
  return luaL_error(L, "attempt to modify read-only table '%s'", lua_tostring(L, -1));
}

// Pushes the real table behind the read-only proxy at `idx` (raw reads only),
// or returns false with nothing pushed when `idx` is not such a proxy.
bool push_readonly_target(lua_State* L, int idx) {
  if (!lua_getmetatable(L, idx)) return false;
  if (lua_rawgetp(L, -1, &readonly_key) == LUA_TNIL) {
    lua_pop(L, 2);
    return false;
  }
  lua_pushliteral(L, "__index");
  lua_rawget(L, -3);
  lua_replace(L, -3);
  lua_pop(L, 1);
  return true;
}

// The iterator pairs() hands out for a proxy: next() over the real table, with
// the proxy as the state, so the real (writable) table never reaches a script.
int readonly_next(lua_State* L) {
  lua_settop(L, 2);
  if (!push_readonly_target(L, 1)) return luaL_argerror(L, 1, "read-only library table expected");
  lua_insert(L, 2);  // target, key
  if (lua_next(L, 2)) return 2;
  lua_pushnil(L);
  return 1;
}

int readonly_pairs(lua_State* L) {
  if (push_readonly_target(L, 1)) {
    materialize_module(L, -1);
    lua_pop(L, 1);
  }
  lua_pushcfunction(L, readonly_next);
  lua_pushvalue(L, 1);
  lua_pushnil(L);
  return 3;
}

int readonly_len(lua_State* L) {
  lua_getmetatable(L, 1);
  lua_getfield(L, -1, "__index");
  lua_pushinteger(L, static_cast<lua_Integer>(lua_rawlen(L, -1)));
  return 1;
}

bool is_readonly(lua_State* L, int idx) {
  if (!lua_getmetatable(L, idx)) return false;
  bool ro = lua_rawgetp(L, -1, &readonly_key) != LUA_TNIL;
  lua_pop(L, 2);
  return ro;
}

// --- base function replacements --------------------------------------------

int finish_pcall(lua_State* L, int status, lua_KContext extra) {
  if (status != LUA_OK && status != LUA_YIELD) {
    process* p = process::of(L);
    p->doom_if_out_of_memory(status);
    if (p->doomed()) return lua_error(L);  // termination is not catchable
    lua_pushboolean(L, 0);
    lua_pushvalue(L, -2);
    return 2;
  }
  return lua_gettop(L) - static_cast<int>(extra);
}

int sb_pcall(lua_State* L) {
  luaL_checkany(L, 1);
  lua_pushboolean(L, 1);
  lua_insert(L, 1);
  int status = lua_pcallk(L, lua_gettop(L) - 2, LUA_MULTRET, 0, 0, finish_pcall);
  return finish_pcall(L, status, 0);
}

int sb_xpcall(lua_State* L) {
  int n = lua_gettop(L);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  lua_pushboolean(L, 1);
  lua_pushvalue(L, 1);
  lua_rotate(L, 3, 2);
  int status = lua_pcallk(L, n - 2, LUA_MULTRET, 2, 2, finish_pcall);
  return finish_pcall(L, status, 2);
}

int sb_rawset(lua_State* L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  if (is_readonly(L, 1)) return luaL_error(L, "attempt to modify a read-only table");
  return g_rawset(L);
}

// Lua runs finalizers with hooks off, so a looping __gc could never be
// preempted or killed: the sandbox refuses metatables with a __gc field. Lua
// marks an object for finalisation when its metatable has a raw `__gc` of any
// value at this moment (a field added later never marks it), so the check is
// raw too: a read through __index could run code that adds the field after the
// check. No Lua code runs between the check and the real setmetatable.
int sb_setmetatable(lua_State* L) {
  lua_settop(L, 2);
  if (lua_type(L, 2) == LUA_TTABLE) {
    lua_pushliteral(L, "__gc");
    if (lua_rawget(L, 2) != LUA_TNIL) {
      return luaL_error(L, "__gc metamethods are not allowed in a process (use <close> variables)");
    }
    lua_pop(L, 1);
  }
  return g_setmetatable(L);
}

int sb_collectgarbage(lua_State* L) {
  const char* opt = luaL_optstring(L, 1, "collect");
  static constexpr std::string_view allowed[] = {"collect", "count", "step", "isrunning"};
  if (std::find(std::begin(allowed), std::end(allowed), opt) == std::end(allowed)) {
    return luaL_error(L, "collectgarbage option '%s' is not allowed in a process", opt);
  }
  return g_collect(L);
}

int sb_print(lua_State* L) {
  int n = lua_gettop(L);
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (int i = 1; i <= n; ++i) {
    if (i > 1) luaL_addchar(&b, '\t');
    luaL_tolstring(L, i, nullptr);
    luaL_addvalue(&b);
  }
  luaL_pushresult(&b);
  std::size_t len;
  const char* text = lua_tolstring(L, -1, &len);
  log_from(L, log_level::info, std::string_view(text, len));
  return 0;
}

// --- resetting coroutines (coroutine.close) ----------------------------------

// Lua 5.4.4 bug (fixed in 5.4.5, upstream commit 1e64c139): lua_resetthread
// runs the __close handlers of the closed coroutine with that coroutine's own
// C-call count, not its closer's, so a __close that closes another coroutine
// whose __close closes another... recurses in C without bound (~11k levels
// overflow an 8 MiB stack: SIGSEGV, the daemon dies). Every reset in a process
// goes through here, so we count the nesting on this thread (a close never
// yields, so it starts and ends in one turn) and, because a chain of resumes
// (each bounded by Lua's own 200-level C limit) may sit between two closes,
// also keep a margin of real C stack.
constexpr std::size_t k_reset_stack_margin = 1u << 20;  // > 200 nested resumes
thread_local int t_reset_depth = 0;

// Bytes of C stack left below the caller on this thread (large if unknown).
std::size_t c_stack_left() {
  thread_local const char* low = [] {
    const char* base = nullptr;
    pthread_attr_t attr;
    if (pthread_getattr_np(pthread_self(), &attr) == 0) {
      void* addr = nullptr;
      std::size_t size = 0;
      if (pthread_attr_getstack(&attr, &addr, &size) == 0) base = static_cast<const char*>(addr);
      pthread_attr_destroy(&attr);
    }
    return base;
  }();
  const char* here = static_cast<const char*>(__builtin_frame_address(0));
  if (!low || here <= low) return SIZE_MAX;
  return static_cast<std::size_t>(here - low);
}

bool reset_allowed() {
  return t_reset_depth < max_reset_depth && c_stack_left() > k_reset_stack_margin;
}

// lua_resetthread, counted. Never raises (the reset runs protected).
int reset_thread(lua_State* co) {
  ++t_reset_depth;
  int status = process::of(co)->reset(co);  // the watchdog arms `co` meanwhile
  --t_reset_depth;
  return status;
}

// coroutine.close, as lcorolib's but through reset_thread, and a kill or a
// memory error met by a __close handler stays fatal.
int coro_close(lua_State* L) {
  lua_State* co = lua_tothread(L, 1);
  luaL_argexpected(L, co, 1, "coroutine");
  lua_Debug ar;
  if (co == L) return luaL_error(L, "cannot close a running coroutine");
  if (lua_status(co) == LUA_OK && lua_getstack(co, 0, &ar))
    return luaL_error(L, "cannot close a normal coroutine");
  if (!reset_allowed())
    return luaL_error(L, "C stack overflow (coroutine.close nested too deeply)");
  int status = reset_thread(co);
  if (status == LUA_OK) {
    lua_pushboolean(L, 1);
    return 1;
  }
  lua_pushboolean(L, 0);
  lua_xmove(co, L, 1);
  process* p = process::of(L);
  p->doom_if_out_of_memory(status);
  if (p->doomed()) return lua_error(L);
  return 2;
}

// --- coroutines that keep scheduler yields invisible -------------------------

int coro_resume_k(lua_State* L, int status, lua_KContext ctx);

int coro_resume_finish(lua_State* L, int r) {
  if (r == k_suspended) return lua_yieldk(L, 0, 0, coro_resume_k);
  if (r == k_error) {
    if (process::of(L)->doomed()) return lua_error(L);
    lua_pushboolean(L, 0);
    lua_insert(L, -2);
    return 2;
  }
  lua_pushboolean(L, 1);
  lua_insert(L, -(r + 1));
  return r + 1;
}

int coro_resume(lua_State* L) {
  lua_State* co = lua_tothread(L, 1);
  luaL_argexpected(L, co, 1, "coroutine");
  return coro_resume_finish(L, resume_nested(L, co, lua_gettop(L) - 1));
}

int coro_resume_k(lua_State* L, int, lua_KContext) {
  return coro_resume_finish(L, resume_nested(L, lua_tothread(L, 1), 0));
}

int coro_wrap_k(lua_State* L, int status, lua_KContext ctx);

int coro_wrap_finish(lua_State* L, int r) {
  if (r == k_suspended) return lua_yieldk(L, 0, 0, coro_wrap_k);
  if (r == k_error) {
    lua_State* co = lua_tothread(L, lua_upvalueindex(1));
    int stat = lua_status(co);
    if (stat != LUA_OK && stat != LUA_YIELD) {       // error inside: close its tbc variables
      if (reset_allowed()) stat = reset_thread(co);  // (else left for the collector)
      lua_xmove(co, L, 1);
    }
    if (!process::of(L)->doomed() && stat != LUA_ERRMEM && lua_type(L, -1) == LUA_TSTRING) {
      luaL_where(L, 1);
      lua_insert(L, -2);
      lua_concat(L, 2);
    }
    return lua_error(L);
  }
  return r;
}

int coro_wrap_call(lua_State* L) {
  lua_State* co = lua_tothread(L, lua_upvalueindex(1));
  return coro_wrap_finish(L, resume_nested(L, co, lua_gettop(L)));
}

int coro_wrap_k(lua_State* L, int, lua_KContext) {
  return coro_wrap_finish(L, resume_nested(L, lua_tothread(L, lua_upvalueindex(1)), 0));
}

int coro_wrap(lua_State* L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_State* co = lua_newthread(L);
  lua_pushvalue(L, 1);
  lua_xmove(L, co, 1);
  lua_pushcclosure(L, coro_wrap_call, 1);
  return 1;
}

int coro_yield(lua_State* L) {
  if (L == process::of(L)->lua()) {
    return luaL_error(L, "attempt to yield from outside a coroutine");
  }
  return lua_yield(L, lua_gettop(L));
}

int coro_isyieldable(lua_State* L) {
  lua_State* co = lua_isnone(L, 1) ? L : lua_tothread(L, 1);
  luaL_argexpected(L, co, 1, "coroutine");
  lua_pushboolean(L, co != process::of(L)->lua() && lua_isyieldable(co));
  return 1;
}

// --- libraries --------------------------------------------------------------

// Pushes the real string library table, opening it (and the full string
// metatable, with string.dump removed) on first use.
void push_string_lib(lua_State* L) {
  if (lua_getfield(L, LUA_REGISTRYINDEX, k_string_lib) == LUA_TTABLE) return;
  lua_pop(L, 1);
  luaL_requiref(L, "string", luaopen_string, 0);
  install_bounded_string(L, -1);
  lua_pushnil(L);
  lua_setfield(L, -2, "dump");
  lua_pushliteral(L, "");
  lua_getmetatable(L, -1);
  lua_pushboolean(L, 0);
  lua_setfield(L, -2, "__metatable");
  lua_pop(L, 2);
  lua_pushvalue(L, -1);
  lua_setfield(L, LUA_REGISTRYINDEX, k_string_lib);
}

void push_coroutine_lib(lua_State* L) {
  const luaL_Reg fns[] = {
      {"create", g_co_create}, {"status", g_co_status},           {"running", g_co_running},
      {"close", coro_close},   {"resume", coro_resume},           {"wrap", coro_wrap},
      {"yield", coro_yield},   {"isyieldable", coro_isyieldable}, {nullptr, nullptr},
  };
  luaL_newlib(L, fns);
}

// math.randomseed in a process whose draws must repeat (a durable run): a
// seed is required; without one Lua would seed from the clock.
int repeatable_randomseed(lua_State* L) {
  if (lua_isnone(L, 1))
    return luaL_error(L,
                      "math.randomseed: give a seed (in a durable run every draw must be the "
                      "same on replay; workflow.random is recorded)");
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
  return lua_gettop(L);
}

// The math table at `idx`, just opened: seeded as the process's own sink
// asks (a durable run's draws come from its run id, so a replay draws the
// same numbers), with a randomseed that will not seed from the clock.
void seed_math(lua_State* L, int idx) {
  const command_sink* sink = process::of(L)->own_sink();
  std::optional<std::uint64_t> seed = sink ? sink->random_seed() : std::nullopt;
  if (!seed) return;
  idx = lua_absindex(L, idx);
  lua_getfield(L, idx, "randomseed");
  lua_pushvalue(L, -1);
  lua_pushinteger(L, static_cast<lua_Integer>(*seed));
  lua_call(L, 1, 0);
  lua_pushcclosure(L, repeatable_randomseed, 1);
  lua_setfield(L, idx, "randomseed");
}

void push_library(lua_State* L, lib which, const char* name) {
  switch (which) {
    case lib::string: push_string_lib(L); break;
    case lib::table:
      luaL_requiref(L, name, luaopen_table, 0);
      install_bounded_table(L, -1);
      break;
    case lib::math:
      luaL_requiref(L, name, luaopen_math, 0);
      seed_math(L, -1);
      break;
    case lib::utf8: luaL_requiref(L, name, luaopen_utf8, 0); break;
    case lib::coroutine: push_coroutine_lib(L); break;
    case lib::none: lua_pushnil(L); return;
  }
  push_readonly(L, -1, name);
}

// __index of the string metatable before the library is open.
int lazy_string_index(lua_State* L) {
  push_string_lib(L);
  lua_pushvalue(L, 2);
  lua_rawget(L, -2);
  return 1;
}

// __index of the globals table: materialises a safe global on first read. A
// global the script deleted stays deleted (the process remembers which it got).
int lazy_global_index(lua_State* L) {
  if (lua_type(L, 2) != LUA_TSTRING) return 0;
  const char* key = lua_tostring(L, 2);
  auto it = std::lower_bound(
      g_globals.begin(), g_globals.end(), key,
      [](const global_entry& e, const char* k) { return std::strcmp(e.name, k) < 0; });
  if (it == g_globals.end() || std::strcmp(it->name, key) != 0) return 0;
  auto bit = std::uint32_t{1} << (it - g_globals.begin());
  process* p = process::of(L);
  if (p->globals_opened & bit) return 0;
  p->globals_opened |= bit;
  if (it->library != lib::none) {
    push_library(L, it->library, it->name);
  } else if (it->fn) {
    lua_pushcfunction(L, it->fn);
  } else if (std::strcmp(key, "_G") == 0) {
    lua_pushvalue(L, 1);
  } else {
    lua_pushliteral(L, LUA_VERSION);
  }
  lua_pushvalue(L, 2);
  lua_pushvalue(L, -2);
  lua_rawset(L, 1);
  return 1;
}

lua_CFunction global_fn(lua_State* T, const char* name) {
  lua_getglobal(T, name);
  lua_CFunction f = lua_tocfunction(T, -1);
  lua_pop(T, 1);
  return f;
}

void capture_std(lua_State* T) {
  static const char* const safe_base[] = {
      "assert", "error",  "getmetatable", "ipairs",   "next",     "pairs", "rawequal",
      "rawget", "rawlen", "select",       "tonumber", "tostring", "type"};
  for (const char* name : safe_base) g_globals.push_back({name, global_fn(T, name), lib::none});
  g_rawset = global_fn(T, "rawset");
  g_collect = global_fn(T, "collectgarbage");
  g_setmetatable = global_fn(T, "setmetatable");
  const std::pair<const char*, lua_CFunction> ours[] = {{"pcall", sb_pcall},
                                                        {"xpcall", sb_xpcall},
                                                        {"load", bounded_load},
                                                        {"print", sb_print},
                                                        {"rawset", sb_rawset},
                                                        {"collectgarbage", sb_collectgarbage},
                                                        {"setmetatable", sb_setmetatable},
                                                        {"require", sandbox_require}};
  for (auto [name, fn] : ours) g_globals.push_back({name, fn, lib::none});
  g_globals.push_back({"_G", nullptr, lib::none});
  g_globals.push_back({"_VERSION", nullptr, lib::none});
  g_globals.push_back({"string", nullptr, lib::string});
  g_globals.push_back({"table", nullptr, lib::table});
  g_globals.push_back({"math", nullptr, lib::math});
  g_globals.push_back({"utf8", nullptr, lib::utf8});
  g_globals.push_back({"coroutine", nullptr, lib::coroutine});
  std::sort(g_globals.begin(), g_globals.end(), [](const global_entry& a, const global_entry& b) {
    return std::strcmp(a.name, b.name) < 0;
  });

  lua_getglobal(T, "coroutine");
  auto field = [&](const char* n) {
    lua_getfield(T, -1, n);
    lua_CFunction f = lua_tocfunction(T, -1);
    lua_pop(T, 1);
    return f;
  };
  g_co_create = field("create");
  g_co_status = field("status");
  g_co_running = field("running");
  lua_pop(T, 1);

  // String arithmetic coercion ("10" + 1) lives in the string metatable.
  static const char* const arith[] = {"__add", "__sub", "__mul",  "__mod",
                                      "__pow", "__div", "__idiv", "__unm"};
  lua_pushliteral(T, "");
  lua_getmetatable(T, -1);
  for (const char* name : arith) {
    lua_getfield(T, -1, name);
    if (lua_CFunction f = lua_tocfunction(T, -1)) g_string_meta.emplace_back(name, f);
    lua_pop(T, 1);
  }
  lua_pop(T, 2);
}

}  // namespace

void init_sandbox() {
  static std::once_flag once;
  std::call_once(once, [] {
    lua_State* T = luaL_newstate();
    luaL_openlibs(T);
    capture_std(T);
    lua_close(T);
  });
}

void push_readonly(lua_State* L, int idx, const char* name) {
  idx = lua_absindex(L, idx);
  lua_createtable(L, 0, 0);
  lua_createtable(L, 0, 7);
  lua_pushvalue(L, idx);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, readonly_newindex);
  lua_setfield(L, -2, "__newindex");
  lua_pushcfunction(L, readonly_pairs);
  lua_setfield(L, -2, "__pairs");
  lua_pushcfunction(L, readonly_len);
  lua_setfield(L, -2, "__len");
  lua_pushstring(L, name);
  lua_setfield(L, -2, "__name");
  lua_pushboolean(L, 0);
  lua_setfield(L, -2, "__metatable");
  lua_pushboolean(L, 1);
  lua_rawsetp(L, -2, &readonly_key);
  lua_setmetatable(L, -2);
  lua_replace(L, idx);
}

void install_sandbox(lua_State* L) {
  lua_pushglobaltable(L);
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, lazy_global_index);
  lua_setfield(L, -2, "__index");
  lua_setmetatable(L, -2);
  lua_pop(L, 1);

  lua_pushliteral(L, "");
  lua_createtable(L, 0, static_cast<int>(g_string_meta.size()) + 2);
  for (auto [name, fn] : g_string_meta) {
    lua_pushcfunction(L, fn);
    lua_setfield(L, -2, name);
  }
  lua_pushcfunction(L, lazy_string_index);
  lua_setfield(L, -2, "__index");
  lua_pushboolean(L, 0);
  lua_setfield(L, -2, "__metatable");
  lua_setmetatable(L, -2);
  lua_pop(L, 1);
}

int resume_nested(lua_State* L, lua_State* co, int narg) {
  process* p = process::of(L);
  if (!lua_checkstack(co, narg)) {
    lua_pushliteral(L, "too many arguments to resume");
    return k_error;
  }
  lua_xmove(L, co, narg);
  for (;;) {
    int nres = 0;
    int resumed = p->resume(co, L, narg, &nres);  // tells the watchdog co runs
    narg = 0;
    if (resumed == LUA_YIELD && p->suspended() != suspend_kind::none) {
      lua_pop(co, nres);
      if (lua_isyieldable(L)) return k_suspended;
      // A C call without continuation sits between us and the scheduler.
      suspend_kind why = p->suspended();
      p->set_suspend(suspend_kind::none);
      if (why == suspend_kind::preempt) continue;  // keep running; preempt later
      if (why == suspend_kind::command) {
        p->wait().fail_now({error_kind::invalid,
                            "cannot wait here: a C call without continuation (metamethod, "
                            "sort comparator, gsub callback) is on the stack",
                            false,
                            {}});
        continue;
      }
      if (why == suspend_kind::exit) {  // process.exit(): refused here, as at top level
        lua_pushliteral(L, "cannot end the process from inside a C call");
        return k_error;
      }
      lua_pushliteral(L, "process terminating");  // doomed: callers re-raise
      return k_error;
    }
    if (resumed == LUA_OK || resumed == LUA_YIELD) {
      if (!lua_checkstack(L, nres + 1)) {
        lua_pop(co, nres);
        lua_pushliteral(L, "too many results to resume");
        return k_error;
      }
      lua_xmove(co, L, nres);
      return nres;
    }
    p->doom_if_out_of_memory(resumed);
    lua_xmove(co, L, 1);
    return k_error;
  }
}

}  // namespace luad::runtime
