// What happens to processes, as clients follow it: the exits of submitted
// processes and who waits for them, the log backlog, subscriptions (log lines
// and the exit of one process), and continuations run after an exit.
//
// DESIGN. Workers report exits (the scheduler's exit hook, a spawn's on_exit)
// and log lines (the log tap) on their own threads. They only record them
// under `mu_` and post what must be sent to the io thread, which owns every
// connection. One lock guards exits, waiters, the backlog and subscriptions
// together, so a client that subscribes misses no line and no exit.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/json.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "runtime/logging.hpp"
#include "runtime/process.hpp"
#include "runtime/result.hpp"
#include "runtime/scheduler.hpp"

namespace luad::server {

class connection;

/// What events keeps, in count and in bytes (config [limits]; a 0 is no
/// bound). The newest exit and log line are always kept, so each table holds
/// at most its byte bound plus one entry.
struct events_bounds {
  std::size_t exits = 10000;                       ///< exits of submitted processes kept
  std::size_t exit_bytes = std::size_t{64} << 20;  ///< their estimated bytes
  std::size_t log_lines = 10000;                   ///< log lines kept for `subscribe`
  std::size_t log_bytes = std::size_t{16} << 20;   ///< their bytes
};

class events {
 public:
  /// Longer log lines are cut for followers.
  static constexpr std::size_t log_message_bytes = 16 << 10;

  explicit events(boost::asio::io_context& io) : io_(io) { tap_.owner = this; }

  /// Sets what is kept (before start only).
  void set_bounds(const events_bounds& b) { bounds_ = b; }
  /// Estimated bytes an exit holds once kept (the table's charge for it).
  static std::size_t exit_footprint(const runtime::exit_info& e);
  /// Exits and log lines kept now, and their bytes (for tests and stats).
  struct kept {
    std::size_t exits, exit_bytes, log_lines, log_bytes;
  };
  kept kept_now();

  /// Lines at `level` or above are kept in the backlog (before start only).
  void set_backlog_level(runtime::log_level level) { backlog_level_ = level; }
  runtime::log_level backlog_level() const { return backlog_level_; }
  /// The tap to install with runtime::set_log_tap.
  runtime::log_tap* tap() { return &tap_; }

  // --- worker threads ---
  /// A process submitted through the socket ended: keep its exit, answer its waiters.
  void on_submitted_exit(const runtime::exit_info& e);
  /// Any process ended (the scheduler's exit hook): notify its subscribers,
  /// run the continuations waiting for it.
  void on_any_exit(const runtime::exit_info& e);

  // --- io thread ---
  /// The kept exit of `id`; else, if `alive` says it still runs, registers
  /// (`conn`, `request_id`) to be answered with it and returns nullopt; else
  /// not_found. `alive` runs under the lock, so no exit falls in between.
  runtime::result<std::optional<boost::json::object>> exit_or_wait(
      runtime::pid id, std::weak_ptr<connection> conn, const boost::json::value& request_id,
      const std::function<bool()>& alive);
  /// Follows `id`: {pid, backlog, subscribed: true} and then `log` and one
  /// `exit` notification; or {pid, backlog, exit} for a process already gone.
  runtime::result<boost::json::object> subscribe(runtime::pid id, std::weak_ptr<connection> conn,
                                                 bool logs, bool backlog, runtime::log_level level,
                                                 runtime::scheduler& sched);
  /// The owner of `id`'s remembered exit; nullopt when none is remembered.
  std::optional<std::string> exit_owner(runtime::pid id);
  /// Stops `conn` following `id`. True if it was.
  bool unsubscribe(runtime::pid id, const std::weak_ptr<connection>& conn);
  /// Calls `then` on the io thread once `id` is out of the process table (soon
  /// if it is already). Never blocks: how a workflow stop waits.
  void after_exit(runtime::pid id, runtime::scheduler& sched, std::function<void()> then);

 private:
  struct waiter {
    std::weak_ptr<connection> conn;
    boost::json::value id;
  };
  struct log_line {
    std::uint64_t serial;
    std::string pid, workflow, time, message, fields;
    runtime::log_level level;
    std::size_t bytes() const {
      return sizeof(log_line) + pid.size() + workflow.size() + time.size() + message.size() +
             fields.size();
    }
  };
  struct subscriber {
    std::weak_ptr<connection> conn;
    bool logs;
    runtime::log_level level;
  };
  struct log_tap final : runtime::log_tap {
    events* owner = nullptr;
    void on_log(const runtime::log_record& rec) noexcept override;
  };

  void record_log(const runtime::log_record& rec);  // a worker thread
  void run_continuations(std::uint64_t serial);     // a worker thread
  static boost::json::object log_json(const log_line& line);

  boost::asio::io_context& io_;
  log_tap tap_;
  runtime::log_level backlog_level_ = runtime::log_level::info;
  std::mutex mu_;
  events_bounds bounds_;
  std::unordered_map<std::uint64_t, runtime::exit_info> exits_;
  std::deque<std::pair<std::uint64_t, std::size_t>> exit_order_;  // (serial, bytes), oldest first
  std::size_t exit_bytes_ = 0;
  std::unordered_map<std::uint64_t, std::vector<waiter>> waiters_;
  std::deque<log_line> log_backlog_;
  std::size_t log_bytes_ = 0;
  std::unordered_map<std::uint64_t, std::vector<subscriber>> subscribers_;
  std::atomic<std::size_t> subscriptions_{0};  // read without the lock by exit hooks
  std::unordered_map<std::uint64_t, std::vector<std::function<void()>>> continuations_;
  std::atomic<std::size_t> continuation_count_{0};  // likewise
};

}  // namespace luad::server
