// One worker thread and its run queue. Other workers steal from the queue's
// front when they run dry; a parked worker sleeps until work is pushed to it.
#pragma once

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <thread>

#include "runtime/command.hpp"
#include "runtime/limits.hpp"

namespace luad::runtime {

class process;
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

  void start();
  /// Asks the loop to exit once its queue is empty, and joins the thread.
  void stop_and_join();
  /// Appends a runnable process (any thread); wakes the worker if parked.
  /// Returns the queue length after the push.
  std::size_t push(process* p);
  /// Moves up to half of this queue (at least one) into `thief`'s queue and
  /// returns one of them to run now; nullptr if empty or busy.
  process* steal_into(worker& thief);
  /// Wakes the worker if it is parked. Returns true if it was.
  bool wake_if_parked();
  unsigned index() const { return index_; }
  /// The worker running on this thread, or nullptr for other threads.
  static worker* current();
  worker_counters counters;

 private:
  void loop();
  process* pop();

  scheduler& owner_;
  const unsigned index_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<process*> queue_;
  bool parked_ = false;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace luad::runtime
