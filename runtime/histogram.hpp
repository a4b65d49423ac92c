// Latency histograms with fixed buckets, for the daemon's metrics: observe()
// is two relaxed atomic adds from any thread; read() copies the counts.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>

namespace luad::runtime {

/// Durations by bucket. The bounds are fixed, the same for every histogram
/// (100 µs to 30 s), so that one scrape format serves them all. Thread-safe.
class histogram {
 public:
  /// Upper bounds of the buckets, in seconds (a last one, +Inf, is implied).
  static constexpr std::array<double, 17> bounds = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                                    0.01,   0.025,   0.05,   0.1,   0.25,   0.5,
                                                    1,      2.5,     5,      10,    30};

  /// Counts one duration (negative ones as zero).
  void observe(std::chrono::steady_clock::duration d) noexcept;

  struct snapshot {
    /// Observations at or below each bound, cumulative; the last is +Inf
    /// and equals `count`.
    std::array<std::uint64_t, bounds.size() + 1> cumulative{};
    std::uint64_t count = 0;
    double sum = 0;  ///< seconds
  };
  /// The counts now. Concurrent observations may land in the sum but not
  /// yet in a bucket (or the reverse); the buckets and count always agree.
  snapshot read() const noexcept;

 private:
  std::array<std::atomic<std::uint64_t>, bounds.size() + 1> counts_{};
  std::atomic<std::uint64_t> sum_ns_{0};
};

}  // namespace luad::runtime
