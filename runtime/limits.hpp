// Per-process limits and the process-facing options of a spawn.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "runtime/module.hpp"
#include "runtime/permissions.hpp"
#include "runtime/pid.hpp"
#include "runtime/value.hpp"

namespace luad::runtime {

struct code_pin;      // runtime/code.hpp
class owner_account;  // runtime/owners.hpp
class command_sink;   // runtime/command.hpp

/// Limits one process runs under. Exceeding memory, instructions or cpu ends
/// the process with reason `limit`.
struct limits {
  std::size_t memory = std::size_t{64} << 20;  ///< bytes of Lua heap; 0 = unlimited
  /// Total VM instructions; 0 = unlimited. Instructions are counted (by a
  /// count hook, which slows Lua code about 2.5x) only when this is set.
  std::uint64_t instructions = 0;
  /// Seconds of cpu: the steady-clock time of its turns, summed; 0 = unlimited.
  double cpu = 0;
  std::size_t mailbox = 1'000'000;  ///< queued messages before sends fail; 0 = unlimited
  std::size_t message_bytes = std::size_t{16}
                              << 20;  ///< largest encoded payload a process may send
  // Memory the daemon holds for a process outside its Lua heap (docs/security.md).
  /// Bytes of queued messages (header, topic, payload) before sends fail; 0 = unlimited.
  std::size_t mailbox_bytes = std::size_t{64} << 20;
  /// Bytes the exit's copy of the main chunk's results may cost (a bound on
  /// their printed JSON too); larger results end the process with `limit`.
  /// 0 = only the copy's hard cap (256 MiB).
  std::size_t exit_bytes = std::size_t{1} << 20;
  /// time.after timers pending at once; 0 = unlimited.
  std::size_t timers = 10'000;
  /// Bytes of time.after payloads (and topics) pending at once; 0 = unlimited.
  std::size_t timer_bytes = std::size_t{16} << 20;

  bool operator==(const limits&) const = default;
};

/// Why a process ended.
enum class exit_reason : std::uint8_t {
  normal,    ///< the main chunk returned; `results` holds its values
  error,     ///< an error escaped the main chunk; `err` says what and where
  killed,    ///< kill() was called on it
  limit,     ///< memory or instruction limit; `err.message` names which
  shutdown,  ///< the scheduler stopped while it was alive
};
std::string_view reason_name(exit_reason r);
/// How many exit reasons there are (for counters indexed by reason).
inline constexpr std::size_t k_exit_reasons = 5;

/// What a process leaves behind.
struct exit_info {
  pid id;
  exit_reason reason = exit_reason::normal;
  std::vector<value> results;  ///< the main chunk's return values (normal only)
  error err;                   ///< for every reason but normal
  std::string owner = {};      ///< the process's owner (process_context::owner)
};

/// The one shape of an exit everywhere it is shown (the protocol, `luad run`,
/// `luad submit --wait`): {pid, reason, results} for a normal exit, else
/// {pid, reason, kind, message, retryable, traceback?}.
value exit_value(const exit_info& e);

/// What a process shares with the processes it spawns: its limits, module
/// classes, script root and owner. Immutable, so one copy serves a whole tree
/// of processes (a process carries only a pointer to it).
struct process_context {
  runtime::limits limits;                   ///< per-process limits
  class_set allowed_classes = all_classes;  ///< module classes it may require
  /// Folder `process.spawn` may load scripts from (children inherit it);
  /// empty: the folder of this process's own script.
  std::string script_root;
  /// Who the process belongs to: "uid:N" (a submission), "workflow:NAME";
  /// empty for processes started from C++ without one. Acting on another
  /// owner's processes follows runtime/owners.hpp. Children inherit it.
  std::string owner;
  /// The account its owner's quotas are counted in (runtime/owners.hpp);
  /// null: no quotas. Children share it.
  std::shared_ptr<owner_account> account;
  /// Other owners that may send to the names its processes register ("*":
  /// all); a workflow's `reachable` key.
  std::vector<std::string> reachable_by;
  /// Other owners that may control its processes ("*": all); a workflow's
  /// `controllers` key.
  std::vector<std::string> controlled_by;
  /// What modules let it do: "http:HOST[:PORT]", "store:NAMESPACE"... (see
  /// runtime/permissions.hpp). Children inherit them.
  permission_list permissions;
  /// Code to run instead of the files' current content (see code_pin in
  /// runtime/code.hpp); null for almost every process. Children inherit it.
  std::shared_ptr<const code_pin> pinned_code;
  /// What the processes it spawns run under, when that is not this same
  /// context: a config workflow's supervisor runs with every module class
  /// (it is our code), its children with the workflow's. Null: this one.
  std::shared_ptr<const process_context> child_context;

  bool operator==(const process_context&) const = default;
};
using context_ptr = std::shared_ptr<const process_context>;

/// A shared copy of `c`: the calling thread's previous result when equal, so
/// processes spawned in a loop share one context.
context_ptr intern_context(process_context&& c);

/// How to start a process.
struct spawn_options {
  std::vector<value> args;  ///< the main chunk's `...`
  /// More of `...` (after `args`), as message-codec encodings, each preceded
  /// by its size (4 bytes): how process.spawn passes pids and tables.
  std::string packed_args;
  /// Limits, classes, root and owner. A spawn from C++ usually fills these in
  /// place; process.spawn passes a shared `context` instead, which wins.
  process_context ctx;
  context_ptr context;
  /// Linked to this process from the start (spawn_link), if set.
  pid link_to;
  /// Monitored from the start by this process under `monitor_ref` (spawn_monitor).
  pid monitored_by;
  std::uint64_t monitor_ref = 0;
  /// Called once, on a worker thread, after the process has ended and while its
  /// pid is still found (so a late `find` never misses both). Keep it short.
  std::function<void(const exit_info&)> on_exit;
  /// Where this process's commands go instead of the scheduler's sink: a
  /// durable run's journal (dispatcher/durable.hpp) or luad test's fakes.
  /// Children inherit it only when it is shared_with_children().
  std::shared_ptr<const command_sink> commands;
};

}  // namespace luad::runtime
