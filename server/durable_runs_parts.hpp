// What durable_runs' files share (durable_runs.cpp, durable_cluster.cpp,
// durable_children.cpp, workflow_runs.cpp): internal to durable_runs.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "dispatcher/durable.hpp"
#include "dispatcher/journal.hpp"
#include "runtime/code.hpp"
#include "runtime/pid.hpp"
#include "runtime/result.hpp"
#include "runtime/value.hpp"
#include "server/durable_runs.hpp"

namespace luad::server {

/// A run with a process (or about to have one).
struct durable_runs::live_run {
  dispatcher::run_record rec;  // as it was started: its id, workflow, owner, spawn request
  std::shared_ptr<dispatcher::durable_sink> sink;
  runtime::pid pid;  // empty until spawned
  /// Why the process is being ended, so that its exit leaves the state alone
  /// (stopped: it stays unfinished, to be resumed; continued: completed by
  /// continue_as_new).
  enum class ending : std::uint8_t {
    none,
    suspended,
    terminated,
    stopped,
    continued,
    moved  // another node owns the run now: its journal and state are that node's
  } why = ending::none;
};

namespace durable_runs_parts {

/// The wall clock in unix seconds.
double unix_now();
/// Waits for an asynchronous journal write (protocol calls, startup and the
/// io thread's rare writes only).
runtime::status written(const std::function<void(dispatcher::journal_backend::written_fn)>& write);
/// The schedule tick a stored spawn request names, or 0.
double tick_of(const dispatcher::run_record& rec);
/// A new run's record, state running; its spawn request is the caller's.
dispatcher::run_record fresh_record(const std::string& owner, const std::string& script,
                                    const runtime::chunk& code, const runtime::value::array& args);
/// A journal read that failed because the database is not back yet (a
/// connection refused, "the database system is starting up"): worth trying
/// again (relaunch, adopt).
inline bool database_not_ready(const runtime::error& e) {
  return e.retryable && e.kind == runtime::error_kind::unavailable;
}

}  // namespace durable_runs_parts
}  // namespace luad::server
