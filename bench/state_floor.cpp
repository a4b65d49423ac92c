// state_floor: what one stock lua_State per process costs on its own, as the
// floor under spawn_exit and spawn_done. Each worker thread makes and closes
// Lua states on a process-style arena (runtime/arena.hpp): bare, with luad's
// sandbox installed, and with that and a `return 1` chunk loaded from its
// bytecode and run; nothing is scheduled, sent or compiled.
#include <algorithm>
#include <cstdint>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "bench/benchmarks.hpp"
#include "runtime/arena.hpp"
#include "runtime/code.hpp"
#include "runtime/lua.hpp"
#include "runtime/sandbox.hpp"

namespace luad::bench {

namespace {

void* arena_alloc(void* ud, void* ptr, std::size_t osize, std::size_t nsize) noexcept {
  auto* heap = static_cast<runtime::arena*>(ud);
  constexpr std::size_t no_limit = SIZE_MAX;
  if (nsize == 0) {
    if (ptr) heap->release(ptr, osize);
    return nullptr;
  }
  return ptr ? heap->resize(ptr, osize, nsize, no_limit) : heap->allocate(nsize, no_limit);
}

enum class level { bare, sandboxed, loaded };

int sandbox_protected(lua_State* L) {
  runtime::install_sandbox(L);
  return 0;
}

// n states made and closed on this thread, each taken up to `how`; `chunk` is
// the bytecode a loaded state runs.
void make_states(std::size_t n, level how, const std::string& chunk) {
  runtime::arena heap;
  for (std::size_t i = 0; i < n; ++i) {
    lua_State* L = lua_newstate(arena_alloc, &heap);
    if (how != level::bare) {
      lua_pushcfunction(L, sandbox_protected);
      (void)lua_pcall(L, 0, 0, 0);
    }
    if (how == level::loaded &&
        luaL_loadbufferx(L, chunk.data(), chunk.size(), "floor", "b") == LUA_OK) {
      (void)lua_pcall(L, 0, 1, 0);
    }
    lua_close(L);
    heap.reset();
  }
}

double states_per_second(std::size_t n, unsigned threads, level how) {
  static const runtime::chunk_ptr code = runtime::compile("return 1", "floor.lua");
  std::vector<std::thread> pool;
  auto t0 = wall_clock::now();
  for (unsigned t = 0; t < threads; ++t)
    pool.emplace_back(make_states, n / threads, how, std::cref(code->bytecode));
  for (auto& th : pool) th.join();
  return static_cast<double>(n / threads * threads) / seconds_since(t0);
}

}  // namespace

void bench_state_floor(const options& opts) {
  const unsigned threads =
      opts.workers ? opts.workers : std::max(1u, std::thread::hardware_concurrency());
  (void)states_per_second(10000, threads, level::loaded);  // warm-up
  report("state_floor_bare", states_per_second(opts.spawn, threads, level::bare), "states/s");
  report("state_floor_sandboxed", states_per_second(opts.spawn, threads, level::sandboxed),
         "states/s");
  report("state_floor_loaded", states_per_second(opts.spawn, threads, level::loaded), "states/s");
  note("state_floor: " + std::to_string(opts.spawn) + " states on " + std::to_string(threads) +
       " threads: lua_newstate + lua_close; with install_sandbox; with a `return 1` chunk "
       "loaded from bytecode and run as well");
}

}  // namespace luad::bench
