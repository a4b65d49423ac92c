// The journal of durable runs: the seam between durable workflows and the
// database that keeps their history (docs/workflows.md, "Durable runs").
//
// DESIGN. A durable run is a process whose every yielded command is recorded,
// with its result, before the run is resumed with it; after a crash the run is
// replayed from the start and each command is answered from its journal. This
// header is all the rest of luad knows of where that history lives: each
// store backend (dispatcher/store_backend.hpp) implements it beside the
// store, so a store write and its journal entry share one transaction;
// SQLite (dispatcher/sqlite_store.*) is the first. Writes are asynchronous and group-committed: a
// callback runs (on the backend's thread, so it must not block) only once the write is durable.
// Reads block and are for startup and the protocol.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/command.hpp"
#include "runtime/result.hpp"

namespace luad::dispatcher {

/// Where a durable run stands. Stored by name (run_state_name).
enum class run_state : std::uint8_t {
  running,     ///< live or replaying
  sleeping,    ///< waiting for a durable timer
  waiting,     ///< waiting for a message
  completed,   ///< returned; its results are in `detail`
  failed,      ///< raised or hit a limit; the error is in `detail`
  suspended,   ///< stopped by a nondeterminism error or by hand; resumable
  terminated,  ///< ended by `luad workflows terminate`
};
std::string_view run_state_name(run_state s);
std::optional<run_state> parse_run_state(std::string_view name);
/// completed, failed and terminated: the run will never run again.
inline bool finished(run_state s) {
  return s == run_state::completed || s == run_state::failed || s == run_state::terminated;
}

/// One durable run, as the `runs` table keeps it.
struct run_record {
  std::string id;         ///< the run id (text, unique)
  std::string workflow;   ///< the config workflow's name; "" for a submission
  std::string owner;      ///< "uid:N" or "workflow:NAME"
  std::string script;     ///< the script's path (as the process names it)
  std::string code_hash;  ///< hex hash of the code the run started on
  std::string args;       ///< the args array, message-codec encoded
  run_state state = run_state::running;
  std::string detail;      ///< JSON text: results, the error, or a suspension report
  std::int64_t steps = 0;  ///< journal entries so far
  double created = 0;      ///< unix seconds
  double updated = 0;
  /// What started it, as JSON text (the server's spawn request): how it is
  /// started again when resumed. "{}" when not given.
  std::string spawn;
  /// Daemons sharing a database (dispatcher/cluster_backend.hpp): the node
  /// that owns the run (0: none, or a single daemon's database) and the
  /// epoch of its claim.
  std::uint32_t node = 0;
  std::int64_t epoch = 0;
  /// create_run on a node of a cluster: leave the run to whichever node
  /// claims it first, rather than taking it here.
  bool queued = false;
};

/// A step of a journal is first `started` (only when its start must survive a
/// crash: a sleep's deadline), then `done` with its outcome.
enum class step_state : std::uint8_t { started = 1, done = 2 };

/// One entry of a run's journal.
struct journal_entry {
  std::string run;                ///< run id
  std::int64_t step = 0;          ///< 0-based position in the run's journal
  runtime::command_id command{};  ///< what was asked
  std::string args;               ///< the command's args, message-codec encoded
  step_state state = step_state::done;
  bool failed = false;  ///< `result` is an encoded error map {kind, message, retryable}
  std::string result;   ///< the outcome's value (or error), message-codec encoded
  double at = 0;        ///< unix seconds it was written
};

/// A message sent to a durable run, recorded before it is delivered so that
/// the run receives it exactly once, across crashes (its receive step names
/// its `seq`).
struct inbox_message {
  std::string run;
  std::int64_t seq = 0;  ///< 0-based, in the order the run was sent them
  std::string sender;    ///< the sender's pid as text ("" for none)
  std::string topic;
  std::string payload;  ///< message-codec encoded
  double at = 0;        ///< unix seconds it was written
  /// A cluster's mail row this message moves into the inbox (its id; 0:
  /// none): deleted in the same transaction (cluster_backend::mail_for).
  std::int64_t mail = 0;
};

/// The history of durable runs. Thread-safe: any thread may call any member.
class journal_backend {
 public:
  /// Runs on the backend's thread once the write is durable (or failed:
  /// `unavailable` for a full disk or a read-only file, never silently).
  using written_fn = std::function<void(runtime::status)>;
  /// The same for a store operation fused with its journal entry.
  using applied_fn = std::function<void(runtime::outcome)>;

  /// Records a new run (its id must be new: `invalid` otherwise).
  virtual void create_run(run_record run, written_fn done) = 0;
  /// Sets a run's state and detail (and `updated`); `not_found` for no run.
  virtual void set_state(std::string run, run_state state, std::string detail, written_fn done) = 0;
  /// Appends `entry` at `entry.step` (the run's next step), or replaces the
  /// `started` entry at that step with its `done` one. A step already done is
  /// refused with `invalid` (a step is never recorded twice).
  virtual void append(journal_entry entry, written_fn done) = 0;
  /// Applies the store operation `store_args` (a store_op command's map, see
  /// dispatcher/storage.hpp) and appends `entry` with its outcome as the
  /// result, in one transaction: after a crash both are there or neither.
  /// `done` gets the operation's outcome (an error is journaled too).
  virtual void apply_and_append(journal_entry entry, runtime::value store_args,
                                applied_fn done) = 0;

  /// Records `m` (its seq must be new for its run: `invalid` otherwise).
  virtual void append_message(inbox_message m, written_fn done) = 0;

  /// Every run, or only those not finished(); oldest first. Blocking.
  virtual runtime::result<std::vector<run_record>> runs(bool unfinished_only) = 0;
  /// Run `id`, or `not_found`. Blocking.
  virtual runtime::result<run_record> run(std::string_view id) = 0;
  /// A run's journal in step order. A row that cannot be read back (a
  /// corrupt or truncated blob, a gap in the steps) fails with `invalid`,
  /// naming the run and the step. Blocking.
  virtual runtime::result<std::vector<journal_entry>> history(std::string_view run) = 0;
  /// The messages recorded for `run`, in seq order; a row that cannot be read
  /// back fails with `invalid`, naming the run and the seq. Blocking.
  virtual runtime::result<std::vector<inbox_message>> messages(std::string_view run) = 0;

 protected:
  ~journal_backend() = default;
};

}  // namespace luad::dispatcher
