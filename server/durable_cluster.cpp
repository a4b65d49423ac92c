// Durable runs in a cluster of daemons sharing one database (see
// durable_runs.hpp, "Daemons sharing a database", and docs/cluster.md): taking
// a run before starting it, starting the runs this node claimed, ending the
// ones another node took, this node's room for more, and mail recorded by
// other nodes for the runs here. server/cluster.cpp drives these calls.
#include <spdlog/spdlog.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "dispatcher/durable.hpp"
#include "runtime/logging.hpp"
#include "runtime/scheduler.hpp"
#include "server/durable_runs.hpp"
#include "server/durable_runs_parts.hpp"

namespace luad::server {

using dispatcher::run_record;
using runtime::error_kind;
using namespace durable_runs_parts;

void durable_runs::set_cluster(dispatcher::cluster_backend& c, std::size_t max_runs) {
  cluster_ = &c;
  max_runs_ = max_runs;
}

runtime::status durable_runs::take(const std::string& run) {
  if (!cluster_) return runtime::done{};
  auto t = cluster_->take(run);
  if (!t) return t.error();
  return runtime::done{};
}

void durable_runs::adopt(const std::vector<run_record>& claimed) {
  std::vector<run_record> again;
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    again.swap(adopt_again_);
  }
  std::size_t started = 0, waiting = 0;
  // (A run claimed again, while it waited, is started once: the second
  // relaunch finds it live.)
  const std::vector<run_record>* lists[] = {&claimed, &again};
  for (const std::vector<run_record>* list : lists) {
    for (const run_record& rec : *list) {
      auto s = relaunch(rec, true);
      if (s) {
        ++started;
      } else if (database_not_ready(s.error())) {
        ++waiting;
        std::lock_guard lock(mu_);
        adopt_again_.push_back(rec);
      }
    }
  }
  if (!claimed.empty() || !again.empty())
    runtime::logger().info(
        "cluster: {} runs claimed{}, {} started by replay{}", claimed.size(),
        again.empty() ? "" : fmt::format(" (and {} claimed before)", again.size()), started,
        waiting ? fmt::format(", {} wait for the database to read their journals", waiting) : "");
}

void durable_runs::drop_lost(const std::vector<std::string>& runs) {
  for (const std::string& id : runs) {
    runtime::pid pid;
    {
      std::lock_guard lock(mu_);
      auto it = live_.find(id);
      if (it == live_.end() || it->second->why != live_run::ending::none) continue;
      it->second->why = live_run::ending::moved;
      pid = it->second->pid;
    }
    runtime::logger().warn("durable run {}: another node took it (this node's lease lapsed)", id);
    if (pid) eng_.scheduler().kill(pid, runtime::exit_reason::killed, "run moved to another node");
  }
}

std::vector<std::string> durable_runs::live_ids() {
  std::lock_guard lock(mu_);
  std::vector<std::string> out;
  out.reserve(live_.size());
  for (const auto& [id, r] : live_)
    if (r->why == live_run::ending::none) out.push_back(id);
  return out;
}

std::size_t durable_runs::room() {
  if (max_runs_ == 0) return SIZE_MAX;
  std::lock_guard lock(mu_);
  std::size_t held = live_.size() + starting_.load();
  return held >= max_runs_ ? 0 : max_runs_ - held;
}

runtime::outcome durable_runs::deliver_mail(dispatcher::inbox_message m,
                                            std::function<void(runtime::outcome)> then) {
  std::shared_ptr<dispatcher::durable_sink> sink;
  {
    std::lock_guard lock(mu_);
    auto it = live_.find(m.run);
    if (it != live_.end() && it->second->why == live_run::ending::none) sink = it->second->sink;
  }
  if (!sink)
    return runtime::outcome::failure(
        runtime::fail(error_kind::not_found, "durable run " + m.run + " has no process here"));
  return sink->take_mail(std::move(m), std::move(then));
}

}  // namespace luad::server
