// luad_bench: runs the process benchmarks and prints `name value unit` lines on
// stdout (comments and machine facts go to stderr as `# ...`).
//
//   luad_bench [--spawn N] [--idle N] [--yields N] [--timers N] [--timer-rounds K] [--messages N]
//              [--ring-procs N] [--ring-laps N] [--spawn-done N] [--idle-receive N]
//              [--loop N] [--lateness N] [--workers N] [--only NAME]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "bench/benchmarks.hpp"
#include "bench/harness.hpp"

namespace {

using luad::bench::options;

struct benchmark {
  std::string_view name;
  void (*run)(const options&);
};

constexpr benchmark benchmarks[] = {
    {"spawn_exit", luad::bench::bench_spawn_exit},
    {"mem_idle", luad::bench::bench_mem_idle},
    {"yield_roundtrips", luad::bench::bench_yields},
    {"timers", luad::bench::bench_timers},
    {"pingpong", luad::bench::bench_pingpong},
    {"cpu_loop", luad::bench::bench_cpu_loop},
    {"oneway", luad::bench::bench_oneway},
    {"ring", luad::bench::bench_ring},
    {"spawn_done", luad::bench::bench_spawn_done},
    {"mem_receive", luad::bench::bench_mem_receive},
    {"store", luad::bench::bench_store},
    {"journal", luad::bench::bench_journal},
    {"durable", luad::bench::bench_durable},
    {"daemon", luad::bench::bench_daemon},
    {"http", luad::bench::bench_http},
    {"patterns", luad::bench::bench_patterns},
    {"cpu_peer", luad::bench::bench_cpu_peer},
    {"lateness", luad::bench::bench_lateness},
    {"state_floor", luad::bench::bench_state_floor},
    {"fresh_memory", luad::bench::bench_fresh_memory},
};

[[noreturn]] void usage(const char* why) {
  std::fprintf(
      stderr,
      "luad_bench: %s\n"
      "usage: luad_bench [--spawn N] [--idle N] [--yields N] [--timers N] [--timer-rounds K] "
      "[--messages N] [--ring-procs N] [--ring-laps N] [--spawn-done N] "
      "[--idle-receive N] [--store-writers N] [--store-writes N] [--journal-runs N] "
      "[--journal-steps N] [--durable-runs N] [--durable-steps N] [--durable-replay N] "
      "[--http-requests N] "
      "[--loop N] [--lateness N] [--workers N] [--only NAME]\n"
      "names: spawn_exit mem_idle yield_roundtrips timers pingpong cpu_loop oneway ring "
      "spawn_done mem_receive store journal durable http daemon patterns cpu_peer "
      "lateness state_floor fresh_memory\n",
      why);
  std::exit(2);
}

std::size_t parse_count(const char* text) {
  char* end = nullptr;
  unsigned long long n = std::strtoull(text, &end, 10);
  if (end == text || *end != '\0') usage("expected a number");
  return static_cast<std::size_t>(n);
}

options parse(int argc, char** argv) {
  options opts;
  for (int i = 1; i < argc; ++i) {
    std::string_view flag = argv[i];
    if (flag == "--help" || flag == "-h") usage("benchmarks of the luad runtime");
    if (i + 1 >= argc) usage("missing value after a flag");
    const char* arg = argv[++i];
    if (flag == "--spawn") {
      opts.spawn = parse_count(arg);
    } else if (flag == "--idle") {
      opts.idle = parse_count(arg);
    } else if (flag == "--yields") {
      opts.yields = parse_count(arg);
    } else if (flag == "--timers") {
      opts.timers = parse_count(arg);
    } else if (flag == "--timer-rounds") {
      opts.timer_rounds = parse_count(arg);
    } else if (flag == "--messages") {
      opts.messages = parse_count(arg);
    } else if (flag == "--ring-procs") {
      opts.ring_procs = parse_count(arg);
    } else if (flag == "--ring-laps") {
      opts.ring_laps = parse_count(arg);
    } else if (flag == "--spawn-done") {
      opts.spawn_done = parse_count(arg);
    } else if (flag == "--idle-receive") {
      opts.idle_receive = parse_count(arg);
    } else if (flag == "--daemon-jobs") {
      opts.daemon_jobs = parse_count(arg);
    } else if (flag == "--store-writers") {
      opts.store_writers = parse_count(arg);
    } else if (flag == "--store-writes") {
      opts.store_writes = parse_count(arg);
    } else if (flag == "--journal-runs") {
      opts.journal_runs = parse_count(arg);
    } else if (flag == "--journal-steps") {
      opts.journal_steps = parse_count(arg);
    } else if (flag == "--durable-runs") {
      opts.durable_runs = parse_count(arg);
    } else if (flag == "--durable-steps") {
      opts.durable_steps = parse_count(arg);
    } else if (flag == "--durable-replay") {
      opts.durable_replay = parse_count(arg);
    } else if (flag == "--http-requests") {
      opts.http_requests = parse_count(arg);
    } else if (flag == "--loop") {
      opts.loop = parse_count(arg);
    } else if (flag == "--lateness") {
      opts.lateness = parse_count(arg);
    } else if (flag == "--workers") {
      opts.workers = static_cast<unsigned>(parse_count(arg));
    } else if (flag == "--only") {
      opts.only = arg;
    } else {
      usage("unknown flag");
    }
  }
  if (opts.spawn == 0 || opts.idle == 0 || opts.yields == 0 || opts.timers == 0 ||
      opts.timer_rounds == 0 || opts.journal_runs == 0 || opts.journal_steps == 0 ||
      opts.durable_runs == 0 || opts.durable_steps == 0 || opts.durable_replay == 0 ||
      opts.lateness == 0) {
    usage("sizes must be positive");
  }
  return opts;
}

}  // namespace

int main(int argc, char** argv) {
  const options opts = parse(argc, argv);
  luad::bench::print_machine();
  bool ran = false;
  for (const benchmark& b : benchmarks) {
    if (!opts.only.empty() && opts.only != b.name) continue;
    int busy = static_cast<int>(100 * luad::bench::machine_busy(std::chrono::milliseconds(500)));
    luad::bench::note(std::string(b.name) + ": machine " + std::to_string(busy) +
                      "% busy before the run" + (busy > 10 ? " (WARNING: figures skewed)" : ""));
    b.run(opts);
    ran = true;
  }
  if (!ran) usage("--only names no benchmark");
  return 0;
}
