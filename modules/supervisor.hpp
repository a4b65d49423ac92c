// Supervisors: a process that starts children and restarts them by policy
// (modules/supervisor.lua), startable from Lua (`supervisor.start`) and C++.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "runtime/scheduler.hpp"

namespace luad::modules {

/// What a supervisor started from C++ tells its starter (the daemon's
/// `luad workflows`): restarts so far, how its last child ended, and how it
/// ended itself. Written by the supervisor process (supervisor.report) and its
/// exit; thread-safe.
class supervisor_status {
 public:
  struct exit_seen {
    std::string reason;  ///< empty: none yet; "not started" when a spawn failed
    std::string kind, message, child;
  };
  struct snapshot {
    std::int64_t restarts = 0;
    exit_seen last_child;  ///< the last child exit (or failed start)
    exit_seen ended;       ///< the supervisor's own exit, once it ended
  };

  snapshot read() const {
    std::lock_guard lock(mu_);
    return now_;
  }
  void note_child(std::int64_t restarts, exit_seen e) {
    std::lock_guard lock(mu_);
    now_.restarts = restarts;
    now_.last_child = std::move(e);
  }
  void note_end(exit_seen e) {
    std::lock_guard lock(mu_);
    now_.ended = std::move(e);
  }

 private:
  mutable std::mutex mu_;
  snapshot now_;
};

/// Starts a supervisor process with `spec` (the table documented in
/// modules/supervisor.lua; child scripts relative to `base`, which must lie
/// inside `root`). `parent`, if set, is linked: the supervisor ends with it.
/// `ctx`, if given, is what its children run under (limits, permissions,
/// module classes, owner); the supervisor itself runs with the same but every
/// module class (it is our code, and needs process, time and log whatever the
/// children may load). The script root of both is set to `root`. `status`, if
/// given, is kept up to date by the supervisor. Returns the supervisor's pid,
/// or why it did not start.
runtime::result<runtime::pid> start_supervisor(runtime::scheduler& s, const runtime::value& spec,
                                               const std::string& base, const std::string& root,
                                               runtime::pid parent = {},
                                               const runtime::process_context* ctx = nullptr,
                                               std::shared_ptr<supervisor_status> status = nullptr);

}  // namespace luad::modules
