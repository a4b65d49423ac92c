// One worker: a run queue and the loop that drives it on whichever thread the
// watchdog gives it (its own, or a spare while that one is held). The queue is
// fair between owners: one FIFO lane per owner account, taken in turn, so a
// thousand runnable processes of one owner (a spawn bomb) wait behind one
// another, not in front of every other owner's. Other workers steal from the
// queue when they run dry; a parked worker sleeps until work is pushed to it
// or its next timer is due. Sleeps submitted on a worker wait in its own
// timer wheel and are fired by its loop between turns (runtime/timer_wheel).
#pragma once

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <vector>

#include "runtime/command.hpp"
#include "runtime/limits.hpp"
#include "runtime/timer_wheel.hpp"

namespace luad::runtime {

class process;
class runner;
class scheduler;

/// Counters a worker bumps on its hot path; one cache line per worker so two
/// workers never write the same line. Read (relaxed) by scheduler::stats().
struct alignas(64) worker_counters {
  std::atomic<std::uint64_t> yields{0}, preemptions{0}, steals{0}, exited{0};
  /// Commands sent, by command id (clock.sleep, fetch.request, store.op).
  std::array<std::atomic<std::uint64_t>, static_cast<std::size_t>(command_id::max_id)> commands{};
  /// Exits, by exit_reason.
  std::array<std::atomic<std::uint64_t>, k_exit_reasons> exits{};
};

class worker {
 public:
  worker(scheduler& owner, unsigned index) : owner_(owner), index_(index) {}

  /// Runs the queue on the calling thread (runner `r`) until the worker is
  /// stopped and its queue is empty, or the watchdog handed the queue to
  /// another thread while `r` was held in a turn.
  void drive(runner& r);
  /// Asks the loop to return once its queue is empty (any thread).
  void request_stop();
  /// Appends a runnable process (any thread); wakes the worker if parked.
  /// Returns the processes waiting to run here after the push (the queue and
  /// the run-next slot).
  std::size_t push(process* p);
  /// From the thread driving this worker: makes `p` the process that runs
  /// after the current turn, without the queue's lock, if nothing is queued
  /// or already waiting there (so the order stays first come, first run).
  /// False: push it instead.
  bool run_next(process* p);
  /// Moves up to half of this queue (at least one) into `thief`'s queue and
  /// returns one of them to run now; nullptr if empty or busy.
  process* steal_into(worker& thief);
  /// Wakes the worker if it is parked. Returns true if it was.
  bool wake_if_parked();
  /// Adds a timer this worker fires between turns at `deadline_ns` (steady
  /// clock; `now_ns` is the caller's reading). Any thread, though it is the
  /// thread driving this worker but for a turn held past a hand-off.
  void add_timer(std::int64_t now_ns, std::int64_t deadline_ns, completion&& done);
  /// Whether anything waits for this worker's thread: a queued process, the
  /// run-next slot, or a timer due by `horizon_ns`. Any thread: the watchdog
  /// hands a worker held in a long turn to a spare only when something waits,
  /// since a hand-off moves the long process to another thread (and core),
  /// whose caches it must fill again.
  bool has_waiting(std::int64_t horizon_ns) const {
    return queued_.load(std::memory_order_relaxed) != 0 ||
           next_.load(std::memory_order_relaxed) != nullptr ||
           next_timer_.load(std::memory_order_relaxed) <= horizon_ns;
  }
  /// Timers held, and those someone still waits for (scans). Any thread.
  std::size_t timers_pending();
  std::size_t timers_live();
  scheduler& owner() const { return owner_; }
  unsigned index() const { return index_; }
  /// The worker running on this thread, or nullptr for other threads.
  static worker* current();
  worker_counters counters;

 private:
  process* pop();
  // Fires the timers due at `now` (the loop's thread; takes mu_).
  void fire_timers(std::int64_t now);
  void drop_timers();
  void park(runner& r, std::unique_lock<std::mutex>& lock);

  scheduler& owner_;
  const unsigned index_;
  std::mutex mu_;
  std::condition_variable cv_;
  /// The runnable processes of one owner account on this worker, in order.
  struct lane {
    const void* key = nullptr;  // the owner account (process_context::account)
    std::deque<process*> queue;
  };
  void push_locked(process* p);
  process* pop_locked();

  std::deque<std::unique_ptr<lane>> lanes_;  // lanes with work, in turn order
  std::vector<std::unique_ptr<lane>> idle_;  // empty lanes kept for reuse (a few)
  // Processes in all lanes; written under mu_, read without it by run_next.
  std::atomic<std::size_t> queued_{0};
  // The process a turn on this worker woke while nothing was queued: it runs
  // next, ahead of the queue and unseen by thieves (run_next). The common
  // case of a send to a waiting process, a reply, a spawn, then costs no
  // lock, lane or deque. Set by the thread driving the worker, or by one held
  // in a turn past a hand-off (see run_next); taken by the driving thread.
  std::atomic<process*> next_{nullptr};
  timer_wheel timers_;  // under mu_
  // timers_.next_deadline(), for the loop's check between turns without mu_.
  std::atomic<std::int64_t> next_timer_{timer_wheel::k_never};
  bool parked_ = false;
  bool stopping_ = false;
};

}  // namespace luad::runtime
