// Latency histograms (histogram.hpp).
#include "runtime/histogram.hpp"

namespace luad::runtime {

namespace {

// The bounds in nanoseconds, so that observe() compares integers.
constexpr std::array<std::int64_t, histogram::bounds.size()> bound_ns = {
    100'000,       250'000,       500'000,       1'000'000,      2'500'000,     5'000'000,
    10'000'000,    25'000'000,    50'000'000,    100'000'000,    250'000'000,   500'000'000,
    1'000'000'000, 2'500'000'000, 5'000'000'000, 10'000'000'000, 30'000'000'000};
static_assert([] {
  for (std::size_t i = 0; i < bound_ns.size(); ++i) {
    double diff = static_cast<double>(bound_ns[i]) - histogram::bounds[i] * 1e9;
    if (diff > 1 || diff < -1) return false;
  }
  return true;
}());

}  // namespace

void histogram::observe(std::chrono::steady_clock::duration d) noexcept {
  std::int64_t ns = std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
  if (ns < 0) ns = 0;
  std::size_t i = 0;
  while (i < bound_ns.size() && ns > bound_ns[i]) ++i;
  counts_[i].fetch_add(1, std::memory_order_relaxed);
  sum_ns_.fetch_add(static_cast<std::uint64_t>(ns), std::memory_order_relaxed);
}

histogram::snapshot histogram::read() const noexcept {
  snapshot s;
  std::uint64_t running = 0;
  for (std::size_t i = 0; i < counts_.size(); ++i) {
    running += counts_[i].load(std::memory_order_relaxed);
    s.cumulative[i] = running;
  }
  s.count = running;
  s.sum = static_cast<double>(sum_ns_.load(std::memory_order_relaxed)) / 1e9;
  return s;
}

}  // namespace luad::runtime
