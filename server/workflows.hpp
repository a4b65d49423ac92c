// Config workflows: each started under a supervisor of its own, stopped
// without blocking the io thread, listed for the `workflows` method, and the
// diff applied when the config file is reloaded. io thread only (and start(),
// before the io thread runs).
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/json.hpp>

#include <functional>
#include <memory>
#include <string>
#include <unordered_map>

#include "modules/supervisor.hpp"
#include "runtime/code.hpp"
#include "runtime/result.hpp"
#include "server/config.hpp"
#include "server/engine.hpp"
#include "server/events.hpp"

namespace luad::server {

class code_reload;
class durable_runs;
class scheduled_runs;

class workflows {
 public:
  workflows(config& cfg, engine& eng, events& ev, boost::asio::io_context& io)
      : cfg_(cfg), eng_(eng), ev_(ev), io_(io) {}
  /// The code reloader told when a workflow starts or stops (set once).
  void set_code_reload(code_reload& c) { code_ = &c; }
  /// Where `durable = true` workflows run (set once; without it, a daemon
  /// with no data directory, they cannot start).
  void set_durable(durable_runs& runs, scheduled_runs& schedules) {
    runs_ = &runs;
    schedules_ = &schedules;
  }

  /// Starts the workflows with start = "boot", logging each.
  void start_boot();
  /// Starts `w` under a supervisor of its own, on `pin`'s code where given (a
  /// rollback) or on the files as they are, and records its supervisor (an
  /// empty pid on failure, unless `keep_on_failure`). A durable workflow has
  /// no supervisor: see start_durable().
  runtime::result<runtime::pid> start(const workflow_config& w,
                                      const std::shared_ptr<const runtime::code_pin>& pin = nullptr,
                                      bool keep_on_failure = false);
  /// Kills the workflow's supervisor (its linked children end with it) and
  /// calls `then(was_running)` on the io thread once it has left the process
  /// table. Never blocks; `then` never runs before stop() returns.
  void stop(const std::string& name, std::function<void(bool)> then);
  /// Whether its supervisor is alive.
  bool running(const std::string& name);
  /// The supervisor it was last started under (empty if never).
  runtime::pid supervisor(const std::string& name) const;
  /// The configured workflow `name`, or nullptr.
  const workflow_config* named(const std::string& name) const;
  /// The `workflows` listing: [{name, script, start, restart, state, restarts,
  /// last_exit, supervisor_exit, ...}] (proto/PROTOCOL.md).
  boost::json::array list();
  /// Restarts each supervised workflow's current (or last) supervisor has
  /// made, by name: {"ticker": 2} (for stats; a new supervisor starts at 0).
  boost::json::object restarts() const;
  /// Rereads the config file (throws config_error, and then changes
  /// nothing): workflows added, removed or changed; profiles, script roots
  /// and per-process limit defaults. `done` gets {added, removed, changed,
  /// unchanged, restart_needed} on the io thread once the workflows it
  /// stopped are gone and restarted.
  void reload(std::function<void(boost::json::object)> done);

 private:
  struct reload_state;
  void start_logged(const workflow_config& w);
  /// A durable `w`: with a schedule, follows it (missed ticks first); without,
  /// resumes its unfinished runs by replay, or starts a new run if it has
  /// none. Returns the pid of one of its runs (empty for a schedule).
  runtime::result<runtime::pid> start_durable(const workflow_config& w);
  void stop_durable(const std::string& name, std::function<void(bool)> then);
  void describe_durable(const workflow_config& w, boost::json::object& o);
  boost::json::object apply_diff(const config& fresh, const std::shared_ptr<reload_state>& st);
  void arrive(const std::shared_ptr<reload_state>& st);
  void adopt(config& fresh);
  void describe_status(const std::string& name, bool alive, boost::json::object& o) const;

  config& cfg_;
  engine& eng_;
  events& ev_;
  boost::asio::io_context& io_;
  code_reload* code_ = nullptr;
  durable_runs* runs_ = nullptr;
  scheduled_runs* schedules_ = nullptr;
  std::unordered_map<std::string, runtime::pid> pids_;  // name -> its supervisor
  // name -> what its current (or last) supervisor reports
  std::unordered_map<std::string, std::shared_ptr<modules::supervisor_status>> statuses_;
};

}  // namespace luad::server
