// Hot code loading: watcher, restarts on new code, trials and rollback
// (code_reload.hpp).
#include "server/code_reload.hpp"

#include <spdlog/spdlog.h>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <utility>

#include "runtime/logging.hpp"
#include "server/access.hpp"
#include "server/workflows.hpp"

namespace luad::server {

namespace asio = boost::asio;
namespace json = boost::json;
namespace fs = std::filesystem;

// A restart waiting for the workflow's processes to exit, or its deadline.
struct code_reload::restart_wait {
  explicit restart_wait(asio::io_context& io) : deadline(io) {}
  asio::steady_timer deadline;
  std::size_t left = 1;  // processes still alive, plus one for the starter
  bool over = false;
};

code_reload::~code_reload() = default;

void code_reload::watch() {
  std::set<std::string> dirs;
  for (const auto& r : script_roots(cfg_)) dirs.insert(fs::weakly_canonical(r).string());
  for (const auto& w : cfg_.workflows)
    dirs.insert(fs::weakly_canonical(fs::path(w.script).parent_path()).string());
  watcher_ = std::make_unique<file_watcher>(
      io_, [this](const std::vector<std::string>& paths, bool everything) {
        if (!stopping_) changed(paths, everything);
      });
  for (const auto& dir : dirs) {
    try {
      watcher_->watch(dir);
    } catch (const std::exception& e) {
      runtime::logger().warn("not watching {} for code changes: {}", dir, e.what());
    }
  }
}

void code_reload::stop() {
  stopping_ = true;
  if (watcher_) watcher_->stop();
  for (const auto& w : waits_)
    if (auto wait = w.lock()) wait->deadline.cancel();
  waits_.clear();
}

json::object code_reload::changed(const std::vector<std::string>& paths, bool everything) {
  runtime::scheduler& sched = eng_.scheduler();
  runtime::code_cache& code = sched.code();
  ++file_changes_;
  remember_previous_packages();
  bool folders = everything;
  for (const auto& p : paths) {
    code.invalidate(p);
    folders |= fs::path(p).extension() != ".lua";  // a folder went or came: its files too
  }
  if (folders) code.invalidate_all();
  std::size_t told = sched.notify_upgrade(paths, everything);
  json::array restarted, failed;
  for (const auto& w : cfg_.workflows) {
    if (w.reload != "restart" || restarting_.count(w.name)) continue;
    if (!running_.count(w.name)) continue;  // not running, or not started by us
    std::string problem;
    bool differs = code_differs(w, paths, everything, problem);
    if (!problem.empty()) {
      ++failures_;
      code_errors_[w.name] = problem;
      failed.push_back(json::string(w.name));
      runtime::logger().error(
          "workflow {}: the new code does not compile; the old code keeps running: {}", w.name,
          problem);
      continue;
    }
    if (rolled_back_.count(w.name) && !differs) continue;  // it keeps saying it was rolled back
    code_errors_.erase(w.name);
    if (!differs) continue;
    restarted.push_back(json::string(w.name));
    restart_on_new_code(w);
  }
  if (!restarted.empty() || !failed.empty() || told > 0)
    runtime::logger().info(
        "code changed ({} files): {} workflows restarting, {} not compiling, {} "
        "processes told to upgrade",
        everything ? std::string("all") : std::to_string(paths.size()), restarted.size(),
        failed.size(), told);
  return json::object{{"restarting", std::move(restarted)},
                      {"not_compiling", std::move(failed)},
                      {"upgrade_messages", told}};
}

// What each reload workflow runs now, for a rollback: packages it required
// since it started are still cached as they were before this change.
void code_reload::remember_previous_packages() {
  runtime::code_cache& code = eng_.scheduler().code();
  for (auto& [name, known] : running_) {
    const workflow_config* w = wf_.named(name);
    if (!w || rolled_back_.count(name)) continue;
    for (const std::string& dep : code.dependencies(fs::weakly_canonical(w->script).string()))
      if (!known.chunks.count(dep))
        if (runtime::chunk_ptr was = code.cached(dep)) known.chunks.emplace(dep, std::move(was));
  }
}

// Whether `w`'s code (its script and the packages it required) differs from
// what it runs; `problem` is set when the new code does not compile.
bool code_reload::code_differs(const workflow_config& w, const std::vector<std::string>& paths,
                               bool everything, std::string& problem) {
  runtime::code_cache& code = eng_.scheduler().code();
  std::string script = fs::weakly_canonical(w.script).string();
  std::vector<std::string> uses = code.dependencies(script);
  uses.insert(uses.begin(), script);
  // A rolled-back workflow runs pinned code that differs from the files on
  // purpose: only a new change to one of its files tries the files again.
  bool pinned = rolled_back_.count(w.name) > 0;
  const auto& ran = running_.at(w.name).chunks;
  bool changed = false, touched = everything;
  for (const auto& path : uses) {
    runtime::chunk_ptr now = code.get(path);
    auto was = ran.find(path);
    bool listed = std::find(paths.begin(), paths.end(), path) != paths.end();
    touched |= listed;
    if (now->compile_error) {
      // A package that is gone may be one the new code no longer needs.
      bool gone = now->compile_error->kind == runtime::error_kind::not_found && path != script;
      bool differs = listed || everything || (!pinned && (was == ran.end() || was->second != now));
      if (differs && !gone) problem = now->compile_error->message;
      continue;
    }
    if (was == ran.end()) {
      changed |= listed;
    } else {
      // The same content compiles to the same bytecode: a cache of size 0
      // hands out a new chunk on every get, and that is not a change.
      changed |= was->second != now && was->second->bytecode != now->bytecode;
    }
  }
  return pinned ? touched : changed;
}

// CANCEL to the workflow's processes (not its supervisor); once they have all
// exited, or after the grace period (at most 5 s), a fresh supervisor on the
// new code. The io thread does not wait: exits and the deadline call back.
void code_reload::restart_on_new_code(const workflow_config& w) {
  if (w.durable) {
    // No CANCEL (its process would end the run): its runs' processes are
    // killed, their states stay unfinished, and they start again by replay
    // on the new code. A replay the new code does not follow suspends the
    // run; there is no trial, and no rollback.
    restarting_.insert(w.name);
    finish_restart(w.name, nullptr);
    return;
  }
  runtime::scheduler& sched = eng_.scheduler();
  // What it runs now is what a rollback goes back to.
  auto previous = std::make_shared<const runtime::code_pin>(running_[w.name]);
  runtime::pid sup = wf_.supervisor(w.name);
  std::vector<runtime::pid> workers;
  std::string owner = "workflow:" + w.name;
  sched.visit([&](runtime::process& proc) {
    if (proc.id() != sup && proc.context().owner == owner) workers.push_back(proc.id());
  });
  restarting_.insert(w.name);
  auto wait = std::make_shared<restart_wait>(io_);
  std::erase_if(waits_, [](const auto& x) { return x.expired(); });
  waits_.push_back(wait);
  auto done = [this, wait, name = w.name, previous] {
    if (wait->over) return;
    wait->over = true;
    wait->deadline.cancel();
    finish_restart(name, previous);
  };
  wait->deadline.expires_after(config_seconds(std::min(cfg_.server.grace_period, 5.0)));
  wait->deadline.async_wait([done](boost::system::error_code) { done(); });
  wait->left += workers.size();
  for (runtime::pid id : workers) {
    sched.cancel(id, "code reload");
    ev_.after_exit(id, sched, [wait, done] {
      if (--wait->left == 0) done();
    });
  }
  if (--wait->left == 0) done();
}

void code_reload::finish_restart(const std::string& name,
                                 std::shared_ptr<const runtime::code_pin> previous) {
  const workflow_config* now = wf_.named(name);
  if (stopping_ || !now) {  // (or removed by a reload meanwhile)
    restarting_.erase(name);
    return;
  }
  wf_.stop(name, [this, w = *now, previous = std::move(previous)](bool) {
    restarting_.erase(w.name);
    if (stopping_) return;
    auto pid = wf_.start(w);
    if (!pid) {
      runtime::logger().error("workflow {} could not restart on new code: {}", w.name,
                              pid.error().message);
      return;
    }
    ++restarts_;
    runtime::logger().info("workflow {} restarted on new code (supervisor {})", w.name,
                           pid->to_string());
    if (w.reload_trial > 0 && previous) {
      trials_[w.name] = trial{previous, pid->serial,
                              std::chrono::steady_clock::now() + config_seconds(w.reload_trial)};
      trials_open_.store(trials_.size());
    }
  });
}

void code_reload::started(const workflow_config& w,
                          const std::shared_ptr<const runtime::code_pin>& pin, bool ok) {
  if (ok && w.reload == "restart") {
    remember(w, pin.get());
  } else {
    running_.erase(w.name);
  }
  if (pin) {
    rolled_back_.insert(w.name);
  } else if (rolled_back_.erase(w.name) > 0) {
    code_errors_.erase(w.name);  // started on the files again: the rollback is over
  }
}

void code_reload::remember(const workflow_config& w, const runtime::code_pin* pin) {
  runtime::code_cache& code = eng_.scheduler().code();
  std::string script = fs::weakly_canonical(w.script).string();
  auto& known = running_[w.name].chunks;
  if (pin) {
    known = pin->chunks;
    return;
  }
  known.clear();
  known[script] = code.get(script);
  for (const std::string& dep : code.dependencies(script)) known[dep] = code.get(dep);
}

void code_reload::stopped(const std::string& name) {
  running_.erase(name);
  forget_trial(name);
}

void code_reload::forget_trial(const std::string& name) {
  trials_.erase(name);
  trials_open_.store(trials_.size());
}

void code_reload::describe(const std::string& name, json::object& listing) const {
  if (auto e = code_errors_.find(name); e != code_errors_.end()) listing["code_error"] = e->second;
  if (rolled_back_.count(name)) listing["code"] = "previous";
}

json::object code_reload::counters() const {
  return json::object{
      {"file_changes", file_changes_},
      {"workflow_restarts", restarts_},
      {"workflow_code_errors", failures_},
      {"workflow_rollbacks", rollbacks_},
      {"watching", watcher_ ? (watcher_->polling() ? "polling" : "inotify") : "off"}};
}

void code_reload::on_any_exit(const runtime::exit_info& e,
                              const runtime::process_context& ctx) {  // a worker thread
  if (trials_open_.load(std::memory_order_relaxed) > 0 &&
      (e.reason == runtime::exit_reason::error || e.reason == runtime::exit_reason::limit) &&
      ctx.owner.starts_with("workflow:") && !ctx.pinned_code) {
    asio::post(io_, [this, name = ctx.owner.substr(9), serial = e.id.serial, why = e.err.message] {
      on_workflow_failure(name, serial, why);
    });
  }
}

void code_reload::on_workflow_failure(const std::string& name, std::uint64_t serial,
                                      const std::string& why) {
  auto t = trials_.find(name);
  if (t == trials_.end() || serial < t->second.first_serial) return;  // not new code on trial
  bool in_time = std::chrono::steady_clock::now() < t->second.until;
  std::shared_ptr<const runtime::code_pin> previous = std::move(t->second.previous);
  forget_trial(name);
  const workflow_config* w = wf_.named(name);
  if (!in_time || !w || stopping_ || restarting_.count(name)) return;
  wf_.stop(name, [this, w = *w, previous = std::move(previous), why](bool) {
    if (!stopping_) roll_back(w, previous, why);
  });
}

void code_reload::roll_back(const workflow_config& w,
                            std::shared_ptr<const runtime::code_pin> previous,
                            const std::string& why) {
  auto pid = wf_.start(w, std::move(previous));
  ++rollbacks_;
  char trial_text[32];
  std::snprintf(trial_text, sizeof trial_text, "%g", w.reload_trial);
  std::string& error = code_errors_[w.name];
  error = "the new code failed within " + std::string(trial_text) + " s of its start (" + why +
          "); running the previous code until its files change again";
  if (pid) {
    runtime::logger().error("workflow {}: {}; supervisor {}", w.name, error, pid->to_string());
  } else {
    runtime::logger().error(
        "workflow {}: the new code failed ({}) and the previous code could not start: {}", w.name,
        why, pid.error().message);
  }
}

}  // namespace luad::server
