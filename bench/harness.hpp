// Benchmark plumbing: the result line format, machine facts, process-exit
// counting and the clocks (wall, CPU, RSS) every benchmark measures with.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>

#include "runtime/code.hpp"
#include "runtime/limits.hpp"

namespace luad::bench {

/// Sizes and selection, from the command line.
struct options {
  std::size_t spawn = 200000;      ///< processes for spawn_exit
  std::size_t idle = 100000;       ///< parked processes for mem_idle
  std::size_t yields = 5000000;    ///< total sleep(0) round trips for yield_roundtrips
  std::size_t timers = 100000;     ///< processes for timers (each sleeps 10 ms, timer_rounds times)
  std::size_t timer_rounds = 10;   ///< sleeps per timers process
  std::size_t messages = 1000000;  ///< round trips / sends for pingpong and oneway
  std::size_t ring_procs = 10000;  ///< processes in the ring
  std::size_t ring_laps = 100;     ///< laps of the ring
  std::size_t spawn_done = 1000000;    ///< children for spawn_done
  std::size_t idle_receive = 1000000;  ///< processes parked in receive for mem_receive
  std::size_t store_writers = 1000;    ///< concurrent writer processes for store
  std::size_t store_writes = 100;      ///< writes per store writer
  std::size_t journal_runs = 1000;     ///< concurrent durable runs for journal
  std::size_t journal_steps = 100;     ///< journaled steps per run for journal
  std::size_t durable_runs = 1000;     ///< concurrent Lua runs for durable (and plain)
  std::size_t durable_steps = 20;      ///< store.incr steps per run for durable
  std::size_t durable_replay = 10000;  ///< steps of the journal durable replays
  std::size_t daemon_jobs = 200000;    ///< jobs through the socket for daemon
  std::size_t http_requests = 200000;  ///< http.get calls in all for http (100 processes)
  std::size_t loop = 20000000;         ///< iterations of cpu_loop
  std::size_t lateness = 1000;         ///< 10 ms sleeps sampled for lateness
  unsigned workers = 0;                ///< scheduler workers; 0 = one per core
  std::string only;                    ///< run just this benchmark (empty = all)
};

/// Prints one result line on stdout: `name value unit`.
void report(std::string_view name, double value, std::string_view unit);
/// Prints a comment line on stderr: `# text`.
void note(std::string_view text);
/// `source` compiled as `name`; a compile error is noted and the program exits 1.
runtime::chunk_ptr compile_or_die(const char* source, const char* name);
/// `# machine: ...` on stderr: nproc and the CPU model.
void print_machine();

/// "100k", "1m" or the plain number, as the Erlang peer names its sizes.
std::string size_tag(std::size_t n);

/// Resident set size of this process (VmRSS), in bytes; 0 if unreadable.
std::size_t rss_bytes();
/// User + system CPU time of this process so far, in seconds.
double cpu_seconds();
/// Whole-machine CPU busy fraction (0..1) over `window`, from /proc/stat; other
/// load on the machine skews every figure, so main() notes it before each run.
double machine_busy(std::chrono::milliseconds window);

using wall_clock = std::chrono::steady_clock;
double seconds_since(wall_clock::time_point t0);

/// Counts process exits; the main thread waits until `target` have ended.
/// The on_exit callbacks it hands out run on worker threads.
class exit_latch {
 public:
  explicit exit_latch(std::size_t target) : target_(target) {}
  /// A callback for spawn_options::on_exit. The latch must outlive the process.
  std::function<void(const runtime::exit_info&)> callback();
  /// Blocks until `target` processes have exited.
  void wait();
  /// Exits whose reason was not `normal`.
  std::size_t abnormal() const { return abnormal_.load(std::memory_order_relaxed); }

 private:
  void count(const runtime::exit_info& e);

  const std::size_t target_;
  std::atomic<std::size_t> done_{0};
  std::atomic<std::size_t> abnormal_{0};
  std::mutex mu_;
  std::condition_variable cv_;
};

}  // namespace luad::bench
