// The TSC's rate against the steady clock, measured once per program over a
// doubling window, and a turn_clock's re-basing on a steady reading.
#include "runtime/turn_clock.hpp"

#include <algorithm>
#include <fstream>
#include <string>

namespace luad::runtime {

std::atomic<std::uint64_t> turn_clock::scale_{0};

namespace {

#if defined(__x86_64__)
// The rate is first taken 50 ms after the first reading, then again each time
// the span has doubled, until it is a minute long; after that once a minute,
// over everything since the first reading.
constexpr std::int64_t k_first_window_ns = 50'000'000;
constexpr std::int64_t k_longest_window_ns = 60'000'000'000;
// A counter reading pairs with a steady time only when the two steady
// readings around it are this close: a thread preempted between them would
// pair the counter with a time milliseconds off, and skew the rate or a base.
constexpr std::int64_t k_tight_pair_ns = 2'000;

// The kernel's clocksource is the TSC: it found the counter invariant and in
// step across cores, and keeps CLOCK_MONOTONIC by it.
bool kernel_keeps_time_by_tsc() {
  std::ifstream f("/sys/devices/system/clocksource/clocksource0/current_clocksource");
  std::string source;
  return f >> source && source == "tsc";
}

// The counter and the steady time it was read at (the middle of two steady
// readings at most k_tight_pair_ns apart); false after three loose tries.
bool tight_pair(std::int64_t& ns, std::uint64_t& tsc) {
  for (int attempt = 0; attempt < 3; ++attempt) {
    std::int64_t before = steady_ns();
    tsc = __rdtsc();
    std::int64_t after = steady_ns();
    if (after - before <= k_tight_pair_ns) {
      ns = before + (after - before) / 2;
      return true;
    }
  }
  return false;
}

class tsc_rate {
 public:
  static tsc_rate& get() {
    static tsc_rate rate;
    return rate;
  }
  bool usable() const { return usable_; }

  // A pair read at `ns`: when the window is due, one thread measures the
  // rate from the first pair to this one.
  void observe(std::int64_t ns, std::uint64_t tsc, std::atomic<std::uint64_t>& scale) {
    std::int64_t due = due_ns_.load(std::memory_order_relaxed);
    if (ns < due) return;
    std::int64_t span = ns - first_ns_;
    std::int64_t next = ns + std::min(span, k_longest_window_ns);
    if (!due_ns_.compare_exchange_strong(due, next, std::memory_order_relaxed)) return;
    std::uint64_t ticks = tsc - first_tsc_;
    if (span <= 0 || ticks == 0 || tsc < first_tsc_) return;
    // long double: 64 bits of mantissa, and a span of days shifted by 32 would
    // not fit in 64-bit integers.
    auto s = static_cast<std::uint64_t>(static_cast<long double>(span) * 4294967296.0L /
                                        static_cast<long double>(ticks));
    scale.store(s, std::memory_order_relaxed);
  }

 private:
  tsc_rate() : usable_(kernel_keeps_time_by_tsc()) {
    if (usable_) usable_ = tight_pair(first_ns_, first_tsc_);
    due_ns_.store(first_ns_ + k_first_window_ns, std::memory_order_relaxed);
  }

  bool usable_;
  std::int64_t first_ns_ = 0;
  std::uint64_t first_tsc_ = 0;
  std::atomic<std::int64_t> due_ns_{0};
};
#endif

}  // namespace

// A steady reading, and with a tight pair a new base for the next millisecond
// of readings; with a loose one (preempted) no base, so the next reading
// re-bases again.
std::int64_t turn_clock::rebase() {
#if defined(__x86_64__)
  tsc_rate& rate = tsc_rate::get();
  std::int64_t ns;
  std::uint64_t tsc;
  if (rate.usable() && tight_pair(ns, tsc)) {
    rate.observe(ns, tsc, scale_);
    if (std::uint64_t scale = scale_.load(std::memory_order_relaxed)) {
      base_ns_ = ns;
      base_tsc_ = tsc;
      rebase_ticks_ = static_cast<std::uint64_t>((std::uint64_t{1'000'000} << 32) / scale);
    }
    return ns > last_ ? (last_ = ns) : last_;
  }
#endif
  std::int64_t now = steady_ns();
  return now > last_ ? (last_ = now) : last_;
}

}  // namespace luad::runtime
