// The four process benchmarks: spawn/exit rate (with spawn_require, the
// bytecode cache's effect), idle memory, sleep(0) round trips and mass 10 ms
// timers. Sizes come from `options`; see docs/performance.md.
#include "bench/benchmarks.hpp"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "runtime/code.hpp"
#include "runtime/message_codec.hpp"
#include "runtime/post.hpp"
#include "runtime/process.hpp"
#include "runtime/span_pool.hpp"
#include "server/engine.hpp"

namespace luad::bench {

namespace {

using runtime::chunk_ptr;
using server::engine;

constexpr const char* trivial_script = "return 1";
constexpr const char* idle_script = "require('time').sleep(3600)";
constexpr const char* yield_script =
    "local sleep = require('time').sleep\n"
    "for _ = 1, ... do sleep(0) end\n";
constexpr const char* timer_script =
    "local sleep = require('time').sleep\n"
    "for _ = 1, ... do sleep(0.01) end\n";

constexpr const char* gated_timer_script =
    "require('process').recv('go')\n"
    "local sleep = require('time').sleep\n"
    "for _ = 1, ... do sleep(0.01) end\n";

/// Spawns `n` processes of `code` with `args`, all counted by `latch`; their
/// pids go to `pids` if given.
void spawn_many(engine& eng, const chunk_ptr& code, std::size_t n, exit_latch& latch,
                const std::vector<runtime::value>& args = {},
                std::vector<runtime::pid>* pids = nullptr) {
  for (std::size_t i = 0; i < n; ++i) {
    runtime::spawn_options so;
    so.args = args;
    so.on_exit = latch.callback();
    auto id = eng.scheduler().spawn(code, std::move(so));
    if (!id) {
      note("spawn refused");
      std::exit(1);
    }
    if (pids) pids->push_back(*id);
  }
}

/// Runs `n` processes to completion; returns the wall time in seconds.
double run_to_exit(engine& eng, const chunk_ptr& code, std::size_t n,
                   const std::vector<runtime::value>& args = {}) {
  exit_latch latch(n);
  auto t0 = wall_clock::now();
  spawn_many(eng, code, n, latch, args);
  latch.wait();
  double wall = seconds_since(t0);
  if (latch.abnormal() != 0) note(std::to_string(latch.abnormal()) + " processes ended abnormally");
  return wall;
}

runtime::scheduler_options engine_options(const options& opts) {
  return runtime::scheduler_options::with_workers(opts.workers);
}

/// Spawns bench/lua/spawn_require.lua `n` times, taking the chunk from the
/// scheduler's code cache per spawn as the daemon does; returns spawns/s.
double spawn_require_rate(engine& eng, std::size_t n) {
  const std::string root = std::string(LUAD_SOURCE_DIR).append("/bench/lua");
  const std::string main = std::string(root).append("/spawn_require.lua");
  exit_latch latch(n);
  auto t0 = wall_clock::now();
  for (std::size_t i = 0; i < n; ++i) {
    runtime::spawn_options so;
    so.ctx.script_root = root;
    so.on_exit = latch.callback();
    if (!eng.scheduler().spawn(eng.scheduler().code().get(main), std::move(so))) {
      note("spawn refused");
      std::exit(1);
    }
  }
  latch.wait();
  double wall = seconds_since(t0);
  if (latch.abnormal() != 0) {
    note(std::to_string(latch.abnormal()).append(" spawn_require processes ended abnormally"));
    std::exit(1);
  }
  return static_cast<double>(n) / wall;
}

/// spawn_require_cached / _uncached: spawns/s of a script that requires a small
/// package, with the bytecode cache (default) and with capacity_bytes = 0
/// (both files read and parsed on every spawn), in one run.
void bench_spawn_require(const options& opts) {
  engine eng(engine_options(opts));
  runtime::code_cache& code = eng.scheduler().code();
  const std::size_t n = std::max<std::size_t>(1000, opts.spawn / 4);
  spawn_require_rate(eng, 2000);  // warm-up
  double cached = spawn_require_rate(eng, n);
  runtime::code_cache_stats with_cache = code.stats();
  runtime::code_cache_options off = code.options();
  off.capacity_bytes = 0;
  code.configure(off);
  spawn_require_rate(eng, 2000);
  double uncached = spawn_require_rate(eng, n);
  runtime::code_cache_stats without = code.stats();
  report("spawn_require_cached", cached, "procs/s");
  report("spawn_require_uncached", uncached, "procs/s");
  report("spawn_require_cache_ratio", cached / uncached, "x");
  note(std::string("spawn_require: ")
           .append(std::to_string(n))
           .append(" spawns each; cached run ")
           .append(std::to_string(with_cache.compiles))
           .append(" compiles, ")
           .append(std::to_string(with_cache.hits))
           .append(" hits; uncached run ")
           .append(std::to_string(without.compiles - with_cache.compiles))
           .append(" compiles"));
}

}  // namespace

void bench_spawn_exit(const options& opts) {
  engine eng(engine_options(opts));
  chunk_ptr code = compile_or_die(trivial_script, "trivial.lua");
  run_to_exit(eng, code, 10000);  // warm-up: worker queues, allocator arenas

  double cpu0 = cpu_seconds();
  double wall = run_to_exit(eng, code, opts.spawn);
  double cpu = cpu_seconds() - cpu0;
  report("spawn_exit", static_cast<double>(opts.spawn) / wall, "procs/s");
  report("spawn_exit_cpu_per_proc", cpu / static_cast<double>(opts.spawn) * 1e9, "ns");
  note("spawn_exit: " + std::to_string(opts.spawn) + " procs in " + std::to_string(wall * 1000) +
       " ms, " + std::to_string(eng.scheduler().worker_count()) + " workers, cpu " +
       std::to_string(cpu / wall) + " cores");
  // Measured here so that `--only spawn_exit` shows what the bytecode cache saves.
  bench_spawn_require(opts);
}

void bench_mem_idle(const options& opts) {
  engine eng(engine_options(opts));
  chunk_ptr code = compile_or_die(idle_script, "idle.lua");
  run_to_exit(eng, compile_or_die(trivial_script, "trivial.lua"), 1000);  // warm-up

  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  std::size_t rss0 = rss_bytes();
  exit_latch latch(opts.idle);  // counts the shutdown exits at the end
  auto t0 = wall_clock::now();
  spawn_many(eng, code, opts.idle, latch);
  while (eng.clock().pending() < opts.idle) {
    if (seconds_since(t0) > 300) {
      note("mem_idle: only " + std::to_string(eng.clock().pending()) + " parked after 300 s");
      std::exit(1);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  note("mem_idle: " + std::to_string(opts.idle) + " parked in " +
       std::to_string(seconds_since(t0) * 1000) + " ms");
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  std::size_t rss1 = rss_bytes();

  const std::string tag = size_tag(opts.idle);
  report("mem_idle_" + tag + "_rss",
         static_cast<double>(rss1 - rss0) / static_cast<double>(opts.idle), "bytes/proc");
  report("mem_idle_" + tag + "_rss_total", static_cast<double>(rss1) / (1024.0 * 1024.0), "MiB");

  auto t1 = wall_clock::now();
  eng.stop();  // ends every parked process with reason `shutdown`
  latch.wait();
  note("mem_idle: stop() ended them in " + std::to_string(seconds_since(t1) * 1000) + " ms");
}

void bench_yields(const options& opts) {
  engine eng(engine_options(opts));
  chunk_ptr code = compile_or_die(yield_script, "yields.lua");
  const std::size_t procs = std::size_t{2} * eng.scheduler().worker_count() * 8;
  const std::size_t per_proc = std::max<std::size_t>(1, opts.yields / procs);
  const std::size_t total = procs * per_proc;
  run_to_exit(eng, code, procs, {static_cast<std::int64_t>(per_proc / 20 + 1)});  // warm-up

  const runtime::scheduler_stats before = eng.scheduler().stats();
  double cpu0 = cpu_seconds();
  double wall = run_to_exit(eng, code, procs, {static_cast<std::int64_t>(per_proc)});
  double cpu = cpu_seconds() - cpu0;
  const runtime::scheduler_stats after = eng.scheduler().stats();
  report("yield_roundtrips", static_cast<double>(total) / wall, "roundtrips/s");
  note("yield_roundtrips: " + std::to_string(procs) + " procs x " + std::to_string(per_proc) +
       " sleep(0) in " + std::to_string(wall * 1000) + " ms, cpu " + std::to_string(cpu / wall) +
       " cores; " + std::to_string(after.yields - before.yields) + " yields, " +
       std::to_string(after.steals - before.steals) + " steals");
}

namespace {

// Erlang's gated timers figure: n processes are spawned and parked in
// recv('go') first; timed from the first `go` sent (from this thread, as the
// escript's parent sends them) until the last of them has slept `rounds`
// times and exited. Spawning is not timed; the broadcast is.
double gated_timers_wall(engine& eng, std::size_t n, std::int64_t rounds) {
  chunk_ptr code = compile_or_die(gated_timer_script, "gated_timers.lua");
  exit_latch latch(n);
  std::vector<runtime::pid> pids;
  pids.reserve(n);
  const auto yields0 = eng.scheduler().stats().yields;
  spawn_many(eng, code, n, latch, {runtime::value(rounds)}, &pids);
  while (eng.scheduler().stats().yields - yields0 < n)  // all parked in recv
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  std::string nil;
  runtime::encode_value(runtime::value(), nil);
  auto t0 = wall_clock::now();
  for (runtime::pid id : pids) {
    if (runtime::process* p = eng.scheduler().find(id)) {
      (void)runtime::post(*p, runtime::pid{}, "go", nil);
      p->release_ref();
    }
  }
  latch.wait();
  if (latch.abnormal() != 0)
    note(std::to_string(latch.abnormal()) + " gated timers ended abnormally");
  return seconds_since(t0);
}

}  // namespace

void bench_timers(const options& opts) {
  const auto rounds = static_cast<std::int64_t>(opts.timer_rounds);
  engine eng(engine_options(opts));
  chunk_ptr code = compile_or_die(timer_script, "timers.lua");
  run_to_exit(eng, code, 1000, {2});  // warm-up

  double cpu0 = cpu_seconds();
  const std::size_t mapped0 = runtime::span_pool::read().mapped;
  exit_latch latch(opts.timers);
  auto t0 = wall_clock::now();
  spawn_many(eng, code, opts.timers, latch, {rounds});
  double spawned = seconds_since(t0);
  latch.wait();
  double wall = seconds_since(t0);
  double cpu = cpu_seconds() - cpu0;
  if (latch.abnormal() != 0) note(std::to_string(latch.abnormal()) + " processes ended abnormally");
  const std::string name = "timers_" + size_tag(opts.timers) + "_x" + std::to_string(rounds);
  report(name, static_cast<double>(opts.timers) * rounds / wall, "timer_events/s");
  report(name + "_wall", wall * 1000, "ms");
  note(name + ": cpu " + std::to_string(cpu / wall) + " cores; the spawn loop took " +
       std::to_string(spawned * 1000) + " ms");
  // Heap regions mapped fresh by each phase: what the host had to back
  // (bench/fresh_memory.cpp says what that costs here).
  const std::size_t mapped1 = runtime::span_pool::read().mapped;
  report(name + "_fresh_heap", static_cast<double>(mapped1 - mapped0) / 1e6, "MB");
  double gated = gated_timers_wall(eng, opts.timers, rounds);
  report(name + "_gated", static_cast<double>(opts.timers) * rounds / gated, "timer_events/s");
  report(name + "_gated_wall", gated * 1000, "ms");
  report(name + "_gated_fresh_heap",
         static_cast<double>(runtime::span_pool::read().mapped - mapped1) / 1e6, "MB");
}

}  // namespace luad::bench
