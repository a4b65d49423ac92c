// The watchdog: one thread that watches every turn in progress, arms a
// one-shot hook on a turn past its time slice (preemption, kills, the cpu
// limit), and hands a held worker's queue to a spare thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <ctime>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "runtime/lua.hpp"
#include "runtime/turn_clock.hpp"

namespace luad::runtime {

class process;
class worker;
class watchdog;

/// One thread that runs turns (a worker's own thread or a spare), and what the
/// watchdog sees of its turn. The owner thread writes the turn fields; the
/// watchdog reads them and writes `arming`, `armed_for` and `handed_off`.
class alignas(64) runner {
 public:
  /// The runner of the calling thread, or nullptr (not a scheduler thread).
  static runner* current() { return t_current_; }

  /// Starts a turn of `p` on its state `L` (may be null before the state
  /// exists); `cpu_left_ns` is what its cpu limit leaves (INT64_MAX: none);
  /// `heavy`: its last long turn was held, so this one is handed off early.
  /// Owner thread; a few stores and at most one clock read.
  void begin_turn(process* p, lua_State* L, std::int64_t cpu_left_ns, bool heavy = false) {
    std::int64_t now = clock_fresh_ ? last_end_ : clock_.now();
    proc_.store(p, std::memory_order_relaxed);
    thread_.store(L, std::memory_order_relaxed);
    started_.store(now, std::memory_order_relaxed);
    cpu_deadline_.store(cpu_left_ns == INT64_MAX ? INT64_MAX : now + cpu_left_ns,
                        std::memory_order_relaxed);
    heavy_.store(heavy, std::memory_order_relaxed);
    epoch_.store(epoch_.load(std::memory_order_relaxed) + 1, std::memory_order_release);
  }
  /// Ends the turn; waits while the watchdog is arming it, so that after this
  /// the state may be closed. Returns the turn's length in ns. Owner thread.
  /// (A turn shorter than prompt_turn_ns() yielded when the watchdog asked.)
  std::int64_t end_turn() {
    epoch_.store(epoch_.load(std::memory_order_relaxed) + 1, std::memory_order_release);
    fence();  // see DESIGN in watchdog.cpp
    if (arming_.load(std::memory_order_acquire)) wait_unarmed();
    last_end_ = clock_.now();
    clock_fresh_ = true;
    return last_end_ - started_.load(std::memory_order_relaxed);
  }
  /// The thread (main state or coroutine) now running; `L` while a coroutine
  /// runs, for the hook to be armed on. Returns the previous one. Owner thread.
  lua_State* switch_thread(lua_State* L) { return thread_.exchange(L, std::memory_order_relaxed); }
  /// Before a block of the running process's heap is freed: waits while the
  /// watchdog walks that state's call chain (lua_sethook). Owner thread.
  void before_free() {
    fence();
    if (arming_.load(std::memory_order_acquire)) wait_unarmed();
  }
  /// True (once) when the watchdog armed the hook for the turn now running,
  /// i.e. the turn is past its slice. Owner thread, from the hook.
  bool take_preempt() {
    std::uint64_t e = armed_for_.exchange(0, std::memory_order_acq_rel);
    return e != 0 && e == epoch_.load(std::memory_order_relaxed);
  }
  /// The longest a turn runs when it yields as soon as its hook is armed: its
  /// slice, plus up to two watchdog ticks before the arm comes and lands.
  std::int64_t prompt_turn_ns() const { return prompt_turn_ns_; }
  /// The worker loop forgets the last turn's end time (it parks).
  void clock_stale() { clock_fresh_ = false; }
  /// The steady clock now, as the worker loop sees it: the last turn's end
  /// while no park came since (no clock read), else a fresh reading, which the
  /// next turn then takes as its start. Owner thread.
  std::int64_t now_ns() {
    if (!clock_fresh_) {
      last_end_ = clock_.now();
      clock_fresh_ = true;
    }
    return last_end_;
  }
  /// Set by the watchdog when it gave this thread's queue to another thread:
  /// the worker loop returns after the current turn. Owner thread.
  /// seq_cst, with the watchdog's store of it: worker::run_next's handshake
  /// needs it, and on x86 and ARMv8 it costs what an acquire load does.
  bool handed_off() const { return handed_off_.load(std::memory_order_seq_cst); }

 private:
  friend class watchdog;
  void wait_unarmed();
  // Orders the owner's stores before its load of arming_: a compiler barrier
  // where membarrier() gives the watchdog's side the hardware one, else a fence.
  static void fence() {
    if (needs_fence_) {
      std::atomic_thread_fence(std::memory_order_seq_cst);
    } else {
      std::atomic_signal_fence(std::memory_order_seq_cst);
    }
  }

  static inline constinit thread_local runner* t_current_ = nullptr;
  static inline bool needs_fence_ = false;  // set once, before the first runner starts
  // Written by the owner at each turn.
  std::atomic<std::uint64_t> epoch_{0};  // odd while a turn runs
  std::atomic<std::int64_t> started_{0};
  std::atomic<std::int64_t> cpu_deadline_{INT64_MAX};
  std::atomic<process*> proc_{nullptr};
  std::atomic<lua_State*> thread_{nullptr};
  std::atomic<bool> heavy_{false};
  turn_clock clock_;              // owner only
  std::int64_t last_end_ = 0;     // owner only
  bool clock_fresh_ = false;      // owner only
  std::uint64_t seen_epoch_ = 0;  // watchdog only

  // Written by the watchdog.
  std::atomic<bool> arming_{false};
  std::atomic<std::uint64_t> armed_for_{0};
  std::atomic<bool> handed_off_{false};
  // Watchdog only: the turn last armed, when, and this thread's cpu time then
  // (a turn is held only once its thread has run on after the arm).
  std::uint64_t armed_epoch_ = 0;
  std::int64_t armed_ns_ = 0;
  std::int64_t armed_cpu_ns_ = 0;
  clockid_t cpu_clock_{};  // set before the thread is published
  bool has_cpu_clock_ = false;
  std::atomic<pid_t> tid_{0};        // the thread's kernel id, set by the thread itself
  std::int64_t prompt_turn_ns_ = 0;  // set once, by the watchdog
  // The pool: the queue this thread drives, or null while it waits as a spare.
  std::mutex mu_;
  std::condition_variable cv_;
  worker* assigned_ = nullptr;
  bool quit_ = false;
  std::atomic<bool> busy_{false};  // driving a queue or finishing a held turn
  std::thread thread_obj_;
};

/// Watchdog settings (scheduler_options carries them).
struct watchdog_options {
  /// How long a turn may run before it is preempted. A turn whose thread has
  /// run on for a quarter slice of cpu after its hook was armed, without
  /// yielding, is inside a C call (string.rep, a big send, a sort
  /// comparator), and its worker's queue is handed to a spare thread.
  std::chrono::microseconds slice{2000};
  /// Spare threads at most beyond the workers (0: as many as workers, at least 2).
  unsigned max_spares = 0;
};

/// Counters of the watchdog (relaxed snapshots).
struct watchdog_stats {
  std::uint64_t arms = 0;            ///< one-shot hooks armed on turns past their slice
  std::uint64_t handoffs = 0;        ///< held workers whose queue a spare thread took over
  std::uint64_t early_handoffs = 0;  ///< of those, heavy processes' turns handed off early
  std::uint64_t spares = 0;          ///< spare threads started so far
  unsigned held = 0;                 ///< threads now finishing a held turn
};

/// Owns every thread that runs turns (one per worker, spares on demand) and the
/// watching thread. Made and driven by the scheduler.
class watchdog {
 public:
  watchdog(watchdog_options opts, std::vector<worker*> workers);
  ~watchdog();
  watchdog(const watchdog&) = delete;
  watchdog& operator=(const watchdog&) = delete;

  /// Starts one thread per worker, and the watching thread.
  void start();
  /// Stops watching (no more arms or hand-offs); the threads keep running.
  void stop_watching();
  /// Joins every thread; each returns once its worker has stopped.
  void join();
  /// Makes the watching thread look now (a kill was requested). Any thread.
  void poke();
  /// Wakes the watching thread if it sleeps long because all was idle. Cheap.
  void note_busy() {
    if (dozing_.load(std::memory_order_relaxed)) poke();
  }
  watchdog_stats stats() const;
  const watchdog_options& options() const { return opts_; }

 private:
  void watch();
  bool scan(std::int64_t now);
  void trim_spans(std::int64_t now, bool dozing);
  runner* spare();
  static void note_cpu_clock(runner& r);
  bool stuck(runner& r, std::uint64_t e, std::int64_t now) const;
  static bool waits_behind(runner& r, std::int64_t horizon);
  void drive(runner& r, worker* first);
  void arm_all(const std::vector<std::pair<runner*, std::uint64_t>>& due, std::int64_t now);
  static void barrier();

  watchdog_options opts_;
  std::vector<worker*> workers_;
  std::vector<std::unique_ptr<runner>> runners_;  // workers', then spares'
  std::atomic<unsigned> started_runners_{0};
  std::mutex mu_;
  std::condition_variable cv_;
  bool poked_ = false, stop_ = false;
  std::atomic<bool> dozing_{false};
  std::int64_t last_trim_ns_ = 0;  // the watching thread's own
  std::thread thread_;
  std::atomic<std::uint64_t> arms_{0}, handoffs_{0}, early_handoffs_{0}, spares_{0};
  /// A turn to hand off: its runner, its epoch, and whether it is a heavy
  /// process's turn taken before the usual hold time.
  struct held_turn {
    runner* r;
    std::uint64_t epoch;
    bool early;
  };
  std::vector<std::pair<runner*, std::uint64_t>> due_;  // scan's, kept to reuse
  std::vector<held_turn> held_;                         // scan's, kept to reuse
};

}  // namespace luad::runtime
