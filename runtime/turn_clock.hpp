// The clock a worker reads once per turn: steady_ns() extrapolated from the
// CPU's time-stamp counter, re-based on the steady clock every millisecond.
//
// Why: the steady clock is a vDSO call that fences the pipeline (rdtscp or
// lfence + rdtsc); at one read per turn it was 6-8 % of a ping-pong run
// (perf, 4 Dec). A plain rdtsc does not wait for the loads before it. It is
// used only where the kernel itself keeps time by the TSC
// (/sys/.../current_clocksource is "tsc"), which the kernel chose because the
// counter is invariant and synchronised across cores; anywhere else, and
// until the counter's rate is known, every reading is steady_ns().
//
// How far it can be off: the rate is measured against the steady clock over
// a window that doubles (50 ms, 100 ms, ... up to a minute), so its error
// falls to parts per million; each reading extrapolates at most 1 ms from a
// counter reading paired with the steady clock (two steady readings around it
// at most 2 us apart, so a preempted pair is not used), so it is within about
// a microsecond of steady_ns(). Readings of one turn_clock never go back.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

#if defined(__x86_64__)
#include <x86intrin.h>
#endif

namespace luad::runtime {

/// Nanoseconds on the steady clock (turn timing and cpu accounting).
inline std::int64_t steady_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

/// One thread's reader (not thread-safe: each runner owns one).
class turn_clock {
 public:
  /// steady_ns(), to within about a microsecond; never less than the last.
  std::int64_t now() {
#if defined(__x86_64__)
    std::uint64_t scale = scale_.load(std::memory_order_relaxed);
    if (scale != 0) {
      std::uint64_t ticks = __rdtsc() - base_tsc_;
      if (ticks < rebase_ticks_) {
        // ticks * scale < 1 ms << 32 by the choice of rebase_ticks_: no overflow.
        std::int64_t t = base_ns_ + static_cast<std::int64_t>((ticks * scale) >> 32);
        return t > last_ ? (last_ = t) : last_;
      }
    }
#endif
    return rebase();
  }

  /// True when readings come from the TSC (the kernel's clocksource is "tsc"
  /// and the rate has been measured); else each is a steady_ns() call.
  static bool from_tsc() { return scale_.load(std::memory_order_relaxed) != 0; }

 private:
  std::int64_t rebase();

  // Nanoseconds per TSC tick, in 32.32 fixed point; 0 while unknown or unused.
  static std::atomic<std::uint64_t> scale_;
  std::int64_t base_ns_ = 0;
  std::uint64_t base_tsc_ = 0;
  std::uint64_t rebase_ticks_ = 0;  // about 1 ms of ticks
  std::int64_t last_ = 0;
};

}  // namespace luad::runtime
