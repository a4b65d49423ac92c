// The daemon's log line for each process that ends in `error` or `limit` (pid,
// script, workflow, reason, kind, message), rate-limited so that a crash loop
// or a spawn bomb of failing processes cannot flood the log.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string_view>

#include "runtime/limits.hpp"

namespace luad::server {

class exit_log {
 public:
  /// Lines logged at once before the limit applies...
  static constexpr double burst = 20;
  /// ...and lines a second after that.
  static constexpr double per_second = 5;
  /// Longest message shown (the rest is cut).
  static constexpr std::size_t message_bytes = 512;

  /// The summary of suppressed lines is logged from `io`, the daemon's
  /// thread, `summary_after` after the first line it leaves out.
  explicit exit_log(boost::asio::io_context& io,
                    std::chrono::milliseconds summary_after = std::chrono::seconds(1))
      : io_(io), timer_(io), summary_after_(summary_after) {}

  /// A process ended (the scheduler's exit hook, any worker thread): logs it
  /// if it ended in error or limit and the budget allows, else counts it.
  /// Never throws.
  void on_exit(const runtime::exit_info& e, const runtime::process_context& ctx,
               std::string_view script) noexcept;

  /// Lines left out so far (for tests).
  std::uint64_t suppressed_total() const;

 private:
  bool take_token();   // mu_ held
  void arm_summary();  // mu_ held
  void log_summary();  // io thread

  boost::asio::io_context& io_;
  boost::asio::steady_timer timer_;  // io thread only
  std::chrono::milliseconds summary_after_;
  mutable std::mutex mu_;
  double tokens_ = burst;
  std::chrono::steady_clock::time_point refilled_ = std::chrono::steady_clock::now();
  std::uint64_t suppressed_ = 0;        // since the last summary
  std::uint64_t suppressed_total_ = 0;  // ever
  bool summary_armed_ = false;
};

}  // namespace luad::server
