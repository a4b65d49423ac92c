// The messaging benchmarks: ping-pong, one-way sends, a ring, spawn-done and
// idle processes parked in receive. Each is driven by a Lua script under
// bench/lua/ that times itself and returns its rate.
#include <malloc.h>
#include <string>
#include <thread>
#include <vector>

#include "bench/benchmarks.hpp"
#include "bench/scripts.hpp"
#include "runtime/code.hpp"
#include "runtime/span_pool.hpp"
#include "server/engine.hpp"

namespace luad::bench {

namespace {

using runtime::value;
using server::engine;

// One script as the main process; its results.
std::vector<value> run_main(engine& eng, const char* name, std::vector<value> args) {
  return run_script(eng, name, std::move(args)).results;
}

runtime::scheduler_options engine_options(const options& opts) {
  return runtime::scheduler_options::with_workers(opts.workers);
}

}  // namespace

void bench_pingpong(const options& opts) {
  engine eng(engine_options(opts));
  run_main(eng, "pingpong.lua", {value(10000)});  // warm-up
  const runtime::scheduler_stats before = eng.scheduler().stats();
  auto r = run_main(eng, "pingpong.lua", {value(static_cast<std::int64_t>(opts.messages))});
  const runtime::scheduler_stats after = eng.scheduler().stats();
  report("pingpong_" + size_tag(opts.messages), number(r.at(0)), "roundtrips/s");
  note("pingpong: " + std::to_string(after.steals - before.steals) + " steals, " +
       std::to_string(after.handoffs - before.handoffs) + " hand-offs, " +
       std::to_string(after.preemptions - before.preemptions) + " preemptions");
  // The same with process.receive's msg table on both sides.
  auto t = run_main(eng, "pingpong.lua",
                    {value(static_cast<std::int64_t>(opts.messages)), value("table")});
  report("pingpong_table_" + size_tag(opts.messages), number(t.at(0)), "roundtrips/s");
}

void bench_cpu_loop(const options& opts) {
  engine eng(engine_options(opts));
  run_main(eng, "cpu_loop.lua", {value(100000)});  // warm-up
  auto r = run_main(eng, "cpu_loop.lua", {value(static_cast<std::int64_t>(opts.loop))});
  report("cpu_loop_" + size_tag(opts.loop), number(r.at(0)), "iterations/s");
}

void bench_oneway(const options& opts) {
  engine eng(engine_options(opts));
  run_main(eng, "oneway.lua", {value(10000)});
  auto r = run_main(eng, "oneway.lua", {value(static_cast<std::int64_t>(opts.messages))});
  report("oneway_" + size_tag(opts.messages), number(r.at(0)), "msgs/s");
}

void bench_ring(const options& opts) {
  engine eng(engine_options(opts));
  run_main(eng, "ring.lua", {value(1000), value(10)});
  auto p = static_cast<std::int64_t>(opts.ring_procs);
  auto laps = static_cast<std::int64_t>(opts.ring_laps);
  auto r = run_main(eng, "ring.lua", {value(p), value(laps)});
  std::string name = "ring_" + size_tag(opts.ring_procs) + "_x" + std::to_string(laps);
  report(name, number(r.at(0)), "msgs/s");
  report(name + "_setup", number(r.at(1)) * 1000, "ms");
}

void bench_spawn_done(const options& opts) {
  engine eng(engine_options(opts));
  run_main(eng, "spawn_done.lua", {value(10000)});
  auto r = run_main(eng, "spawn_done.lua", {value(static_cast<std::int64_t>(opts.spawn_done))});
  report("spawn_done_" + size_tag(opts.spawn_done), number(r.at(0)), "procs/s");
}

namespace {
// Bytes in use from malloc and from the span pool under the Lua heaps.
std::size_t heap_bytes() {
  return mallinfo2().uordblks + runtime::span_pool::in_use(runtime::span_pool::read());
}
}  // namespace

void bench_mem_receive(const options& opts) {
  engine eng(engine_options(opts));
  run_main(eng, "spawn_done.lua", {value(1000)});  // warm-up
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  std::size_t rss0 = rss_bytes();
  std::size_t heap0 = heap_bytes();
  runtime::chunk_ptr code = eng.scheduler().code().get(bench_script("idle_receive.lua"));
  auto before = eng.scheduler().stats().yields;
  auto t0 = wall_clock::now();
  for (std::size_t i = 0; i < opts.idle_receive; ++i) {
    // No exit callback: it would cost each process a record of its own, and
    // stop() below ends them all anyway.
    (void)eng.scheduler().spawn(code, runtime::spawn_options{});
  }
  while (eng.scheduler().stats().yields - before < opts.idle_receive) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  note("mem_receive: " + std::to_string(opts.idle_receive) + " parked in " +
       std::to_string(seconds_since(t0) * 1000) + " ms");
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  std::size_t rss1 = rss_bytes();
  std::size_t heap1 = heap_bytes();
  const std::string tag = size_tag(opts.idle_receive);
  // Bytes malloc and the span pool handed out (Lua heaps, process records,
  // tables), without allocator slack: where RSS per process goes.
  report("mem_receive_" + tag + "_heap",
         static_cast<double>(heap1 - heap0) / static_cast<double>(opts.idle_receive), "bytes/proc");
  report("mem_receive_" + tag + "_rss",
         static_cast<double>(rss1 - rss0) / static_cast<double>(opts.idle_receive), "bytes/proc");
  report("mem_receive_" + tag + "_rss_total", static_cast<double>(rss1) / (1024.0 * 1024.0), "MiB");
  eng.stop();
}

}  // namespace luad::bench
