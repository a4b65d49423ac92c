// The schedules of config workflows at work: at each tick of a workflow's
// `schedule` a new durable run of it starts, and the ticks missed while the
// daemon was down run once it is back, as its `catchup` says
// (docs/workflows.md, "Schedules").
//
// DESIGN. The truth is the runs table: each run started by a tick stores
// that tick in its spawn request, so the latest tick that ran survives any
// crash (a tick whose run was recorded has run; one that was not is missed,
// and caught up). One timer per scheduled workflow on the io thread waits
// for the next tick; each tick's run is recorded before the timer is armed
// again. Overlap is allowed: a tick starts its run even when the previous
// tick's run is still going (each is its own durable run). io thread only.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>

#include "runtime/result.hpp"
#include "server/config.hpp"
#include "server/schedule.hpp"

namespace luad::server {

class durable_runs;

class scheduled_runs {
 public:
  using clock_fn = std::function<schedule::time_point()>;
  /// `now`: the wall clock (tests shift it to bring a tick near).
  scheduled_runs(durable_runs& runs, boost::asio::io_context& io, clock_fn now = {});
  ~scheduled_runs();
  scheduled_runs(const scheduled_runs&) = delete;
  scheduled_runs& operator=(const scheduled_runs&) = delete;

  /// Starts following `w`'s schedule: first the ticks it missed since its
  /// last run's tick (per `w.catchup`; none for a workflow that never ran),
  /// then a timer for the next tick. Returns how many missed ticks started a
  /// run; `invalid` for a schedule that does not parse.
  runtime::result<std::size_t> start(const workflow_config& w);
  /// Stops following `name`'s schedule (its runs go on); false if it was not.
  bool stop(const std::string& name);
  /// Whether `name`'s schedule is followed.
  bool following(const std::string& name) const { return entries_.count(name) > 0; }
  /// The next tick of `name` (unix seconds), if followed and it has one.
  std::optional<double> next_tick(const std::string& name) const;
  /// Runs started by ticks so far (missed ones included).
  std::size_t ticks_run() const { return ticks_run_; }
  /// Stops every timer (daemon shutdown).
  void stop_all();

 private:
  struct entry;
  void arm(entry& e, schedule::time_point after);
  void fire(const std::string& name, schedule::time_point tick);
  bool run_tick(const workflow_config& w, schedule::time_point tick);

  durable_runs& runs_;
  boost::asio::io_context& io_;
  clock_fn now_;
  std::unordered_map<std::string, std::unique_ptr<entry>> entries_;
  std::size_t ticks_run_ = 0;
};

/// A time point as unix seconds.
double unix_seconds(schedule::time_point t);

}  // namespace luad::server
