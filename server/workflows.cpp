// Config workflows: start, stop, list, and the reload diff (workflows.hpp).
#include "server/workflows.hpp"

#include <spdlog/spdlog.h>
#include <boost/asio/post.hpp>

#include <filesystem>
#include <utility>
#include <vector>

#include "modules/supervisor.hpp"
#include "runtime/bounded_lib.hpp"
#include "runtime/code.hpp"
#include "runtime/logging.hpp"
#include "server/code_reload.hpp"
#include "server/durable_runs.hpp"
#include "server/scheduled_runs.hpp"
#include "server/spawn_request.hpp"

namespace luad::server {

namespace asio = boost::asio;
namespace json = boost::json;
namespace fs = std::filesystem;

namespace {

// The supervisor spec of a workflow: one child, its restart policy and backoff.
runtime::value supervisor_spec(const workflow_config& w) {
  runtime::value::array args;
  for (const auto& a : w.args) args.emplace_back(a);
  runtime::value::map child{
      {"name", w.name}, {"script", w.script}, {"args", std::move(args)}, {"restart", w.restart}};
  return runtime::value::map{
      {"strategy", "one_for_one"},
      {"intensity", static_cast<std::int64_t>(w.intensity)},
      {"period", w.period},
      {"backoff", runtime::value::map{{"initial", w.backoff_initial}, {"max", w.backoff_max}}},
      {"children", runtime::value::array{runtime::value(std::move(child))}}};
}

const workflow_config* find_in(const std::vector<workflow_config>& list, const std::string& name) {
  const workflow_config* found = nullptr;
  for (const auto& w : list)
    if (w.name == name) found = &w;
  return found;
}

}  // namespace

// Each workflow runs under a supervisor of its own, so that its restart
// policy, permissions, limits and module classes are its alone.
runtime::result<runtime::pid> workflows::start(const workflow_config& w,
                                               const std::shared_ptr<const runtime::code_pin>& pin,
                                               bool keep_on_failure) {
  if (w.durable) return start_durable(w);
  runtime::process_context ctx = workflow_context(eng_, w);
  ctx.pinned_code = pin;
  std::string folder = fs::path(w.script).parent_path().string();
  // `ctx` is what the child runs under; the supervisor adds every module class.
  auto status = std::make_shared<modules::supervisor_status>();
  auto pid = modules::start_supervisor(eng_.scheduler(), supervisor_spec(w), folder, folder, {},
                                       &ctx, status);
  if (code_) code_->started(w, pin, pid.ok());
  if (pid || !keep_on_failure) {
    pids_[w.name] = pid ? *pid : runtime::pid{};
    statuses_[w.name] = pid ? std::move(status) : nullptr;
  }
  return pid;
}

runtime::result<runtime::pid> workflows::start_durable(const workflow_config& w) {
  if (!runs_ || !schedules_)
    return runtime::fail(
        runtime::error_kind::unavailable,
        "durable workflows need the store ([storage] data_dir, or backend = \"postgres\")");
  if (code_) code_->started(w, nullptr, true);
  if (!w.schedule.empty()) {
    auto caught_up = schedules_->start(w);
    if (!caught_up) return caught_up.error();
    pids_[w.name] = runtime::pid{};
    return runtime::pid{};
  }
  auto runs = runs_->resume_workflow(w);
  if (!runs) return runs.error();
  for (const std::string& run : runs->suspended)
    runtime::logger().warn(
        "workflow {}: run {} is suspended; `luad workflows resume {}` or `terminate {}`", w.name,
        run, run, run);
  if (runs->resumed > 0)
    runtime::logger().info("workflow {}: {} runs resumed by replay", w.name, runs->resumed);
  runtime::pid pid;
  if (!runs->live.empty()) {
    pid = runs->live.front().pid;
  } else if (!runs->elsewhere.empty()) {
    runtime::logger().info("workflow {}: its run {} runs on another node", w.name,
                           runs->elsewhere.front());
  } else if (runs->suspended.empty()) {
    auto fresh = runs_->start_workflow(w);
    if (!fresh) return fresh.error();
    if (fresh->pid)
      runtime::logger().info("workflow {}: durable run {} started", w.name, fresh->run);
    else
      runtime::logger().info("workflow {}: run {} was started by another node", w.name, fresh->run);
    pid = fresh->pid;
  }
  pids_[w.name] = pid;
  return pid;
}

void workflows::start_logged(const workflow_config& w) {
  auto pid = start(w);
  if (pid && w.durable)
    runtime::logger().info("workflow {} started (durable{})", w.name,
                           w.schedule.empty() ? "" : ", schedule \"" + w.schedule + "\"");
  else if (pid)
    runtime::logger().info("workflow {} started (supervisor {})", w.name, pid->to_string());
  else
    runtime::logger().error("workflow {} could not start: {}", w.name, pid.error().message);
}

void workflows::start_boot() {
  for (const auto& w : cfg_.workflows)
    if (w.start == "boot") start_logged(w);
}

void workflows::stop(const std::string& name, std::function<void(bool)> then) {
  if (const workflow_config* w = named(name); w && w->durable) {
    stop_durable(name, std::move(then));
    return;
  }
  runtime::scheduler& sched = eng_.scheduler();
  runtime::pid old = supervisor(name);
  if (code_) code_->stopped(name);
  if (!old || !sched.kill(old, runtime::exit_reason::killed, "workflow stopped")) {
    asio::post(io_, [then = std::move(then)] { then(false); });
    return;
  }
  // Its children are linked to the supervisor and end with it.
  ev_.after_exit(old, sched, [then = std::move(then)] { then(true); });
}

// Its schedule stops; its runs' processes are killed, their states left
// unfinished so that the next start (a reload, a restart on new code)
// resumes them by replay.
void workflows::stop_durable(const std::string& name, std::function<void(bool)> then) {
  if (code_) code_->stopped(name);
  bool was = schedules_ && schedules_->stop(name);
  std::vector<runtime::pid> pids = runs_ ? runs_->stop_workflow(name) : std::vector<runtime::pid>{};
  was |= !pids.empty();
  auto left = std::make_shared<std::size_t>(pids.size() + 1);
  auto arrive = [left, was, then = std::move(then)] {
    if (--*left == 0) then(was);
  };
  for (runtime::pid pid : pids) ev_.after_exit(pid, eng_.scheduler(), arrive);
  asio::post(io_, arrive);
}

runtime::pid workflows::supervisor(const std::string& name) const {
  auto it = pids_.find(name);
  return it == pids_.end() ? runtime::pid{} : it->second;
}

bool workflows::running(const std::string& name) {
  if (const workflow_config* w = named(name); w && w->durable) {
    if (schedules_ && schedules_->following(name)) return true;
    return runs_ && runs_->has_live(name);
  }
  runtime::pid pid = supervisor(name);
  runtime::process* sup = pid ? eng_.scheduler().find(pid) : nullptr;
  if (sup) sup->release_ref();
  return sup != nullptr;
}

const workflow_config* workflows::named(const std::string& name) const {
  return find_in(cfg_.workflows, name);
}

json::array workflows::list() {
  json::array listed;
  for (const auto& w : cfg_.workflows) {
    if (w.durable) {
      json::object o{{"name", w.name}, {"script", w.script}, {"start", w.start}};
      describe_durable(w, o);
      listed.push_back(std::move(o));
      continue;
    }
    runtime::pid pid = supervisor(w.name);
    bool alive = running(w.name);
    json::object o{{"name", w.name},
                   {"script", w.script},
                   {"start", w.start},
                   {"restart", w.restart},
                   {"state", alive ? "running"
                             : pid ? "stopped"
                                   : "not started"}};
    if (alive) o["supervisor"] = pid.to_string();
    describe_status(w.name, alive, o);
    if (w.reload != "none") o["reload"] = w.reload;
    if (code_) code_->describe(w.name, o);
    listed.push_back(std::move(o));
  }
  return listed;
}

// A durable workflow: running while it has a live run or follows its
// schedule; its runs (unfinished ones, and the latest finished one).
void workflows::describe_durable(const workflow_config& w, json::object& o) {
  bool alive = running(w.name);
  o["durable"] = true;
  o["state"] = alive ? "running" : pids_.count(w.name) ? "stopped" : "not started";
  if (!w.schedule.empty()) {
    o["schedule"] = w.schedule;
    o["catchup"] = w.catchup;
    if (schedules_)
      if (auto next = schedules_->next_tick(w.name)) o["next_tick"] = *next;
  }
  o["runs"] = runs_ ? runs_->runs_of(w.name) : json::array{};
  if (w.reload != "none") o["reload"] = w.reload;
  if (code_) code_->describe(w.name, o);
}

namespace {

json::object exit_json(const modules::supervisor_status::exit_seen& e) {
  json::object o{{"reason", e.reason}};
  if (!e.child.empty()) o["child"] = e.child;
  if (!e.kind.empty()) o["kind"] = e.kind;
  if (!e.message.empty()) o["message"] = e.message;
  return o;
}

}  // namespace

// What its supervisor reported: restarts, the last child exit, and how the
// supervisor itself ended (gave up, killed) when it is not running.
void workflows::describe_status(const std::string& name, bool alive, json::object& o) const {
  auto it = statuses_.find(name);
  if (it == statuses_.end() || !it->second) return;
  modules::supervisor_status::snapshot s = it->second->read();
  o["restarts"] = s.restarts;
  if (!s.last_child.reason.empty()) o["last_exit"] = exit_json(s.last_child);
  if (!alive && !s.ended.reason.empty()) o["supervisor_exit"] = exit_json(s.ended);
}

json::object workflows::restarts() const {
  json::object out;
  for (const auto& [name, status] : statuses_)
    if (status) out[name] = status->read().restarts;
  return out;
}

// A reload in progress: stops are issued at once; the starts wait for them.
struct workflows::reload_state {
  json::object result;
  std::vector<workflow_config> to_start;
  std::size_t stops_left = 1;  // (one for reload() itself)
  std::function<void(json::object)> done;
};

void workflows::reload(std::function<void(json::object)> done) {
  config fresh = load_config(cfg_.path);  // a bad file changes nothing
  auto st = std::make_shared<reload_state>();
  st->done = std::move(done);
  st->result = apply_diff(fresh, st);
  bool restart_needed = fresh.server != cfg_.server || fresh.storage != cfg_.storage ||
                        fresh.metrics != cfg_.metrics || fresh.cluster != cfg_.cluster ||
                        fresh.limits.max_processes != cfg_.limits.max_processes;
  runtime::logger().info("reloaded {}: {} workflows added, {} removed, {} changed", cfg_.path,
                         st->result["added"].as_array().size(),
                         st->result["removed"].as_array().size(),
                         st->result["changed"].as_array().size());
  adopt(fresh);
  if (restart_needed)
    runtime::logger().warn(
        "{}: changes to [server], [storage], [metrics], [cluster] or limits.max_processes take "
        "effect at the "
        "next start",
        cfg_.path);
  st->result["restart_needed"] = restart_needed;
  arrive(st);
}

// Stops the workflows removed or changed; the changed ones that ran, and the
// added ones that start at boot, start once every stop is done (arrive()).
json::object workflows::apply_diff(const config& fresh, const std::shared_ptr<reload_state>& st) {
  json::array added, removed, changed, unchanged;
  for (const auto& w : cfg_.workflows) {
    if (find_in(fresh.workflows, w.name)) continue;
    removed.push_back(json::string(w.name));
    ++st->stops_left;
    stop(w.name, [this, st, name = w.name](bool was) {
      if (was) runtime::logger().info("workflow {} removed: stopped", name);
      arrive(st);
    });
    pids_.erase(w.name);
    statuses_.erase(w.name);
  }
  for (const auto& w : fresh.workflows) {
    const workflow_config* before = find_in(cfg_.workflows, w.name);
    if (!before) {
      added.push_back(json::string(w.name));
      if (w.start == "boot") st->to_start.push_back(w);
    } else if (*before == w) {
      unchanged.push_back(json::string(w.name));
    } else {
      changed.push_back(json::string(w.name));
      ++st->stops_left;
      stop(w.name, [this, w, st](bool was) {
        if (was || running(w.name) || w.start == "boot") st->to_start.push_back(w);
        arrive(st);
      });
    }
  }
  return json::object{{"added", std::move(added)},
                      {"removed", std::move(removed)},
                      {"changed", std::move(changed)},
                      {"unchanged", std::move(unchanged)}};
}

void workflows::arrive(const std::shared_ptr<reload_state>& st) {
  if (--st->stops_left > 0) return;
  for (const auto& w : st->to_start) start_logged(w);
  asio::post(io_, [st] { st->done(std::move(st->result)); });
}

// What a reload takes from the new file at once; the rest waits for a restart.
void workflows::adopt(config& fresh) {
  cfg_.workflows = std::move(fresh.workflows);
  cfg_.profiles = std::move(fresh.profiles);
  cfg_.script_roots = std::move(fresh.script_roots);
  cfg_.limits.process = fresh.limits.process;
  cfg_.limits.max_connections = fresh.limits.max_connections;
  cfg_.limits.max_request_bytes = fresh.limits.max_request_bytes;
  cfg_.limits.connections_per_uid = fresh.limits.connections_per_uid;
  cfg_.limits.idle_timeout = fresh.limits.idle_timeout;
  cfg_.limits.request_timeout = fresh.limits.request_timeout;
  cfg_.limits.source_bytes = fresh.limits.source_bytes;
  cfg_.limits.pattern_steps = fresh.limits.pattern_steps;
  runtime::set_source_limit(cfg_.limits.source_bytes);
  runtime::set_pattern_budget(cfg_.limits.pattern_steps);
}

}  // namespace luad::server
