// Schedules of config workflows at work (scheduled_runs.hpp).
#include "server/scheduled_runs.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <utility>

#include "runtime/logging.hpp"
#include "server/durable_runs.hpp"

namespace luad::server {

namespace {

schedule::time_point from_unix(double s) {
  return schedule::time_point(
      std::chrono::duration_cast<schedule::time_point::duration>(std::chrono::duration<double>(s)));
}

}  // namespace

double unix_seconds(schedule::time_point t) {
  return std::chrono::duration<double>(t.time_since_epoch()).count();
}

struct scheduled_runs::entry {
  entry(workflow_config cfg, schedule s, boost::asio::io_context& io)
      : w(std::move(cfg)), sched(std::move(s)), timer(io) {}
  workflow_config w;
  schedule sched;
  boost::asio::steady_timer timer;
  std::optional<schedule::time_point> next;
};

scheduled_runs::scheduled_runs(durable_runs& runs, boost::asio::io_context& io, clock_fn now)
    : runs_(runs),
      io_(io),
      now_(now ? std::move(now) : [] { return std::chrono::system_clock::now(); }) {}

scheduled_runs::~scheduled_runs() { stop_all(); }

runtime::result<std::size_t> scheduled_runs::start(const workflow_config& w) {
  auto parsed = schedule::parse(w.schedule);
  if (!parsed) return parsed.error();
  stop(w.name);
  auto policy = catchup_from_name(w.catchup).value_or(catchup::one);
  auto e = std::make_unique<entry>(w, std::move(*parsed), io_);
  schedule::time_point now = now_();
  std::size_t caught_up = 0;
  auto last = runs_.last_tick(w.name);
  if (!last) {
    runtime::logger().error("workflow {}: missed ticks not known, none run: {}", w.name,
                            last.error().message);
  } else if (*last > 0) {
    auto missed = e->sched.ticks_missed(from_unix(*last), now, policy);
    if (missed.capped)
      runtime::logger().warn("workflow {}: more than {} ticks missed; the oldest are skipped",
                             w.name, max_missed_ticks);
    for (schedule::time_point tick : missed.ticks) caught_up += run_tick(w, tick);
    if (!missed.ticks.empty() || policy != catchup::none)
      runtime::logger().info("workflow {}: {} missed ticks run (catchup = {})", w.name, caught_up,
                             w.catchup);
  }
  entry& ref = *e;
  entries_[w.name] = std::move(e);
  arm(ref, now);
  return caught_up;
}

bool scheduled_runs::stop(const std::string& name) {
  auto it = entries_.find(name);
  if (it == entries_.end()) return false;
  it->second->timer.cancel();
  entries_.erase(it);
  return true;
}

void scheduled_runs::stop_all() {
  for (auto& [name, e] : entries_) e->timer.cancel();
  entries_.clear();
}

std::optional<double> scheduled_runs::next_tick(const std::string& name) const {
  auto it = entries_.find(name);
  if (it == entries_.end() || !it->second->next) return std::nullopt;
  return unix_seconds(*it->second->next);
}

// Waits for the first tick after `after`. The timer is a steady one, waited
// for in steps of at most a minute, so that a wall clock that jumps is seen
// at the next step rather than after the whole wait.
void scheduled_runs::arm(entry& e, schedule::time_point after) {
  e.next = e.sched.next_after(after);
  if (!e.next) {
    runtime::logger().warn("workflow {}: schedule \"{}\" has no tick to come", e.w.name,
                           e.w.schedule);
    return;
  }
  auto wait = std::clamp<std::chrono::steady_clock::duration>(
      std::chrono::duration_cast<std::chrono::steady_clock::duration>(*e.next - now_()),
      std::chrono::steady_clock::duration::zero(), std::chrono::minutes(1));
  e.timer.expires_after(wait);
  e.timer.async_wait([this, name = e.w.name, tick = *e.next](boost::system::error_code ec) {
    if (!ec) fire(name, tick);
  });
}

void scheduled_runs::fire(const std::string& name, schedule::time_point tick) {
  auto it = entries_.find(name);
  if (it == entries_.end()) return;
  entry& e = *it->second;
  if (now_() < tick) {  // a step of a long wait
    e.timer.expires_after(std::min<std::chrono::steady_clock::duration>(
        std::chrono::duration_cast<std::chrono::steady_clock::duration>(tick - now_()),
        std::chrono::minutes(1)));
    e.timer.async_wait([this, name, tick](boost::system::error_code ec) {
      if (!ec) fire(name, tick);
    });
    return;
  }
  run_tick(e.w, tick);
  arm(e, std::max(tick, now_()));
}

bool scheduled_runs::run_tick(const workflow_config& w, schedule::time_point tick) {
  auto run = runs_.start_workflow(w, unix_seconds(tick));
  if (!run) {
    runtime::logger().error("workflow {}: the run for tick {} could not start: {}", w.name,
                            unix_seconds(tick), run.error().message);
    return false;
  }
  if (!run->pid) {  // recorded first by another node of the cluster, which runs it
    runtime::logger().info("workflow {}: tick {} runs on another node (run {})", w.name,
                           unix_seconds(tick), run->run);
    return true;
  }
  ++ticks_run_;
  runtime::logger().info("workflow {}: run {} started for its tick (pid {})", w.name, run->run,
                         run->pid.to_string());
  return true;
}

}  // namespace luad::server
