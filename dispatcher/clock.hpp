// The clock dispatcher: sleeps and deadlines. A sleep submitted on a worker of
// the attached scheduler waits in that worker's own timer wheel and is fired
// by it between turns (runtime/timer_wheel.hpp); any other thread's sleeps
// wait on the clock's own Asio io_context thread, in one binary heap under a
// mutex with a single steady_timer armed for the earliest deadline. Either
// way a million pending sleeps cost ~16-32 MB and deadlines are rounded up to
// the wheel's 100 µs ticks. Timers whose waiter is gone are purged as they
// grow.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

#include "dispatcher/registry.hpp"
#include "runtime/timer_wheel.hpp"

namespace luad::runtime {
class scheduler;
}

namespace luad::dispatcher {

class clock final : public handler {
 public:
  using time_point = std::chrono::steady_clock::time_point;
  /// Timer resolution: deadlines are rounded up to whole ticks, the workers'
  /// wheels' (100 µs).
  using tick = std::chrono::duration<std::int64_t,
                                     std::ratio<runtime::timer_wheel::k_tick_ns, 1'000'000'000>>;

  clock();
  ~clock();  ///< calls stop()
  clock(const clock&) = delete;
  clock& operator=(const clock&) = delete;

  /// Registers the clock's commands (clock.sleep) in `r`.
  void register_in(registry& r) { r.add(command_id::clock_sleep, *this); }
  /// Hands sleeps submitted on `s`'s workers to their timer wheels. Call
  /// before start(); `s` must outlive every submit (the engine's order).
  void attach(runtime::scheduler& s) { workers_ = &s; }
  /// Starts the io_context thread.
  void start();
  /// Stops the thread; pending timers complete with `canceled`. Idempotent.
  void stop();

  /// clock.sleep: args = seconds (number ≥ 0). Zero completes at once, on the
  /// caller's thread; others complete on the io thread at the first tick at or
  /// after the deadline. Thread-safe.
  void submit(command&& cmd, completion&& done) override;
  /// Timers waiting to fire, the workers' included (thread-safe), abandoned
  /// ones included until purged.
  std::size_t pending() const;
  /// Timers someone still waits for (thread-safe; scans them all).
  std::size_t live() const;

  /// Longest sleep accepted; longer ones are clamped (about 31 years).
  static constexpr double max_seconds = 1e9;

 private:
  struct timer {
    time_point deadline;
    std::uint64_t seq;  // FIFO among equal deadlines
    completion done;
  };
  struct later {
    bool operator()(const timer& a, const timer& b) const {
      return a.deadline != b.deadline ? a.deadline > b.deadline : a.seq > b.seq;
    }
  };
  void rearm();  // io thread
  // Takes the timers nobody awaits any more (a canceled time.after, the sleep
  // of a process that was killed) out of the heap into `dropped`; mu_ held.
  void purge_locked(std::vector<timer>& dropped);
  void fire(const boost::system::error_code& ec);

  boost::asio::io_context io_;
  boost::asio::steady_timer timer_;
  std::thread thread_;
  mutable std::mutex mu_;
  std::vector<timer> heap_;
  std::vector<completion> due_;  // io thread only; reused by every fire
  std::uint64_t seq_ = 0;
  // Heap size at which submit purges abandoned timers: twice what the last
  // purge left, so a purge costs O(1) per submit and the heap stays within
  // twice its live timers (plus k_min_purge).
  static constexpr std::size_t k_min_purge = 1024;
  std::size_t purge_at_ = k_min_purge;
  time_point armed_ = time_point::max();
  std::atomic<bool> running_{false};
  runtime::scheduler* workers_ = nullptr;
};

}  // namespace luad::dispatcher
