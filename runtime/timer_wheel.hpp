// A worker's own timers: a wheel of 100 µs slots for deadlines up to about
// 205 ms ahead and a heap for later ones (BEAM's per-scheduler timer wheel,
// with a tenth of its 1 ms tick: a 10 ms sleep ends 10.0-10.1 ms later, where a
// 1 ms tick made it ~11 ms, since a loop of sleeps starts each just after a
// tick).
//
// DESIGN. A sleep submitted on a worker thread lands here instead of on the
// clock thread's heap, and the worker fires it between turns, on its own
// thread: the process it wakes goes onto that worker's queue with no thread
// hop and no futex wake. A wheel slot holds the completions of one tick in
// submission order, so adding and firing cost O(1) and timers of one tick fire
// FIFO, as the clock's heap does. The owner (worker) locks around every call.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "runtime/command.hpp"

namespace luad::runtime {

class timer_wheel {
 public:
  /// Nanoseconds on the steady clock (runtime/watchdog.hpp's steady_ns).
  using nanos = std::int64_t;
  static constexpr nanos k_tick_ns = 100'000;   ///< one slot: 100 µs
  static constexpr std::size_t k_slots = 2048;  ///< the wheel spans ~205 ms
  static constexpr nanos k_never = INT64_MAX;

  timer_wheel();

  /// Adds a timer that completes `done` at the first tick at or after
  /// `deadline`; `now` is the caller's reading of the steady clock.
  void add(nanos now, nanos deadline, completion&& done);
  /// Moves every completion due at `now` into `due`, earliest tick first,
  /// FIFO within a tick. Call it when now >= next_deadline().
  void take_due(nanos now, std::vector<completion>& due);
  /// The earliest deadline held (never later than the true one), or k_never.
  nanos next_deadline() const { return next_; }
  /// Timers held, abandoned ones included until purged.
  std::size_t size() const { return wheel_count_ + far_.size(); }
  /// Timers someone still waits for (scans them all).
  std::size_t live() const;
  /// Moves every timer nobody awaits any more into `dropped` (the caller
  /// destroys them outside its lock). Called as the wheel grows.
  void purge(std::vector<completion>& dropped);
  /// True when size() has doubled since the last purge (or reached 1024).
  bool wants_purge() const { return size() >= purge_at_; }
  /// Moves every timer out (the worker is stopping).
  void take_all(std::vector<completion>& out);

 private:
  struct far_timer {
    std::int64_t tick;
    std::uint64_t seq;  // FIFO among equal ticks
    completion done;
  };
  struct later {
    bool operator()(const far_timer& a, const far_timer& b) const {
      return a.tick != b.tick ? a.tick > b.tick : a.seq > b.seq;
    }
  };
  std::vector<completion>& slot(std::int64_t tick) { return slots_[tick & (k_slots - 1)]; }
  void take_far_until(std::int64_t tick, std::vector<completion>& due);
  void recompute_next();

  std::vector<std::vector<completion>>
      slots_;                   // tick % k_slots; spans [cursor_, cursor_ + k_slots)
  std::vector<far_timer> far_;  // ticks beyond the wheel, a min-heap
  std::int64_t cursor_ = 0;     // the first tick not fired yet
  std::size_t wheel_count_ = 0;
  std::uint64_t seq_ = 0;
  nanos next_ = k_never;
  static constexpr std::size_t k_min_purge = 1024;
  std::size_t purge_at_ = k_min_purge;
};

}  // namespace luad::runtime
