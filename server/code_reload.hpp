// Hot code loading: the file watcher, restarting reload = "restart"
// workflows whose code changed, the trial of new code and the rollback.
//
// DESIGN. io thread only, except on_any_exit (a worker). `running_` is the
// compiled code each running reload workflow was started on, by path (its
// script, then the packages it was seen to require), so a change of content —
// not of mtime — restarts it. A restart CANCELs the workflow's processes and
// continues once they have all exited (exit continuations, see events.hpp) or
// its grace period (at most 5 s) has passed, then stops the supervisor and
// starts a fresh one: nothing sleeps or polls. A workflow restarted on new
// code is on trial for its `reload_trial` seconds: if one of its processes
// started on the new code fails in that time, it goes back to the code it ran
// before, pinned in memory, until its files change again.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/json.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "runtime/code.hpp"
#include "server/config.hpp"
#include "server/engine.hpp"
#include "server/events.hpp"
#include "server/file_watch.hpp"

namespace luad::server {

class workflows;

class code_reload {
 public:
  code_reload(config& cfg, engine& eng, workflows& wf, events& ev, boost::asio::io_context& io)
      : cfg_(cfg), eng_(eng), wf_(wf), ev_(ev), io_(io) {}
  ~code_reload();

  /// Follows the script roots and the workflows' folders.
  void watch();
  /// The daemon is stopping: no more restarts; pending waits end now.
  void stop();
  /// Files changed on disk (or `luad reload`): forget their compiled code,
  /// tell processes that asked (UPGRADE), restart reload = "restart"
  /// workflows whose code changed, if it compiles. Returns {restarting,
  /// not_compiling, upgrade_messages}.
  boost::json::object changed(const std::vector<std::string>& paths, bool everything);

  /// Workflow `w` was started (`ok`), on `pin`'s code if given (a rollback).
  void started(const workflow_config& w, const std::shared_ptr<const runtime::code_pin>& pin,
               bool ok);
  /// Workflow `name` is being stopped: its code and trial are forgotten.
  void stopped(const std::string& name);
  /// Adds `code_error` and `"code": "previous"` to a workflow's listing.
  void describe(const std::string& name, boost::json::object& listing) const;
  /// The code part of stats: file_changes, workflow_restarts, ..., watching.
  boost::json::object counters() const;
  /// A process ended (a worker thread): a failure of new code on trial
  /// starts a rollback on the io thread.
  void on_any_exit(const runtime::exit_info& e, const runtime::process_context& ctx);

 private:
  struct trial {
    std::shared_ptr<const runtime::code_pin> previous;
    std::uint64_t first_serial = 0;
    std::chrono::steady_clock::time_point until;
  };
  struct restart_wait;

  bool code_differs(const workflow_config& w, const std::vector<std::string>& paths,
                    bool everything, std::string& problem);
  void remember_previous_packages();
  void restart_on_new_code(const workflow_config& w);
  void finish_restart(const std::string& name, std::shared_ptr<const runtime::code_pin> previous);
  void remember(const workflow_config& w, const runtime::code_pin* pin);
  void on_workflow_failure(const std::string& name, std::uint64_t serial, const std::string& why);
  void roll_back(const workflow_config& w, std::shared_ptr<const runtime::code_pin> previous,
                 const std::string& why);
  void forget_trial(const std::string& name);

  config& cfg_;
  engine& eng_;
  workflows& wf_;
  events& ev_;
  boost::asio::io_context& io_;
  bool stopping_ = false;
  std::unique_ptr<file_watcher> watcher_;
  std::unordered_map<std::string, runtime::code_pin> running_;
  // Workflows whose new code did not compile (they keep running the old), or
  // whose new code failed on trial and was rolled back.
  std::unordered_map<std::string, std::string> code_errors_;
  std::set<std::string> restarting_;
  std::set<std::string> rolled_back_;
  std::unordered_map<std::string, trial> trials_;
  std::atomic<std::size_t> trials_open_{0};  // read by workers to skip the post
  std::vector<std::weak_ptr<restart_wait>> waits_;
  std::uint64_t file_changes_ = 0, restarts_ = 0, failures_ = 0, rollbacks_ = 0;
};

}  // namespace luad::server
