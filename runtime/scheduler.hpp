// The scheduler: worker threads with per-worker run queues and work stealing,
// the process table, spawn/kill, and a shutdown that ends every process.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "runtime/code.hpp"
#include "runtime/command.hpp"
#include "runtime/limits.hpp"
#include "runtime/module.hpp"
#include "runtime/owners.hpp"
#include "runtime/pid.hpp"
#include "runtime/result.hpp"
#include "runtime/watchdog.hpp"

namespace luad::runtime {

class process;
class worker;
struct worker_counters;
class process_table;

/// Counters, read without stopping anything (each is a relaxed atomic).
struct scheduler_stats {
  std::uint64_t spawned = 0;
  std::uint64_t exited = 0;
  std::uint64_t yields = 0;          ///< commands sent to dispatchers
  std::uint64_t preemptions = 0;     ///< turns ended by the watchdog's time slice
  std::uint64_t hooks_armed = 0;     ///< one-shot hooks the watchdog armed on long turns
  std::uint64_t handoffs = 0;        ///< held workers' queues given to a spare thread
  std::uint64_t early_handoffs = 0;  ///< of those, at a heavy process's turn's start
  std::uint64_t spare_threads = 0;   ///< spare threads started (at most watchdog max_spares)
  unsigned held = 0;                 ///< threads now finishing a held turn
  std::uint64_t steals = 0;          ///< processes taken from another worker's queue
  std::uint64_t dead_letters = 0;    ///< messages sent to pids that were not alive
  std::size_t alive = 0;
  /// Commands sent to dispatchers, by command id (index 0 is unused).
  std::array<std::uint64_t, static_cast<std::size_t>(command_id::max_id)> commands{};
  /// Exits by exit_reason (normal, error, killed, limit, shutdown).
  std::array<std::uint64_t, k_exit_reasons> exits{};
};

/// Decides whether `caller` may do `action` ("spawn" with the script path,
/// "send" with the target pid) — the place later issues put policies.
using permission_hook =
    std::function<bool(const process& caller, std::string_view action, std::string_view target)>;

struct scheduler_options {
  unsigned workers = 0;  ///< 0 = one per core
  /// The modules processes may `require` (the daemon passes modules::all());
  /// the list must outlive the scheduler.
  std::span<const module_def* const> modules;
  std::uint32_t node = 0;                 ///< the node part of every pid
  std::size_t max_processes = 2'000'000;  ///< live processes before spawn fails; 0 = unlimited
  /// Time slice, hand-off bound and spare threads (runtime/watchdog.hpp).
  watchdog_options watch;
  permission_hook permit;  ///< empty: everything is allowed
  /// Called on a worker after any process has ended (after it left the
  /// process table, after its own on_exit), with the context it ran in and
  /// its script's name. Keep it short; may be empty.
  std::function<void(const exit_info&, const process_context&, std::string_view script)> exit_hook;

  /// Defaults, with `n` workers.
  static scheduler_options with_workers(unsigned n) {
    scheduler_options o;
    o.workers = n;
    return o;
  }
};

/// Told of each name registered or unregistered, after the change, outside
/// the names' lock, on the thread that made it (a worker, for process.register):
/// a cluster keeps a directory of its durable runs' names (server/cluster.hpp).
class name_watch {
 public:
  virtual void registered(const process& p, const std::string& name) = 0;
  virtual void unregistered(pid id, const std::string& name) = 0;

 protected:
  ~name_watch() = default;
};

/// Runs processes. Thread-safe: spawn, kill and stats may be called from any
/// thread, including bindings running on a worker.
class scheduler {
 public:
  /// Builds and checks `opts.modules` (throws std::logic_error on a broken
  /// declaration). `commands` must be ready for submit from any thread and
  /// outlive the scheduler.
  scheduler(scheduler_options opts, const command_sink& commands);
  ~scheduler();  ///< calls stop()
  scheduler(const scheduler&) = delete;
  scheduler& operator=(const scheduler&) = delete;

  /// Starts the worker threads.
  void start();
  /// Ends every live process with reason `shutdown`, waits for their exit
  /// callbacks, then joins the workers. Idempotent.
  void stop();

  /// Queues a new process running `code`; returns its pid. After stop(), with
  /// no code (unavailable), or past max_processes (limit), starts nothing and
  /// returns why.
  result<pid> spawn(chunk_ptr code, spawn_options opts);
  /// Asks the permission hook (true when there is none).
  bool permitted(const process& caller, std::string_view action, std::string_view target) const {
    return !opts_.permit || opts_.permit(caller, action, target);
  }
  /// Ends a live process with `reason` (killed by default): immediately if it
  /// waits or is queued, at its next instruction-budget check if it runs.
  /// Returns false if no such process is alive.
  bool kill(pid id, exit_reason reason = exit_reason::killed, std::string why = {});
  /// Ends every live process of `owner` (all its accounts) with reason
  /// killed, as killpg does for a process group: its accounts refuse new
  /// processes (`unavailable`) until the last of them has ended, so that what
  /// is still running cannot replace what is killed. Returns how many were
  /// asked to end.
  std::size_t kill_owner(std::string_view owner, std::string why = {});
  /// Calls `f(process&)` on every live process (a snapshot: processes may end
  /// meanwhile; each is referenced while `f` runs). For listings, not hot paths.
  void visit(const std::function<void(process&)>& f);
  /// Sends every live process a CANCEL message {reason = why} (as
  /// process.cancel does): a polite request to finish, before a shutdown.
  void cancel_all(const std::string& why);
  /// Sends the live process `id` a CANCEL message {reason = why}. False when
  /// it is not alive (or the message cannot be made: out of memory).
  bool cancel(pid id, std::string_view why);

  /// The live process `id` with a reference the caller must release_ref(), or
  /// nullptr.
  process* find(pid id);
  /// Scripts by path, shared by every spawn.
  runtime::code_cache& code() { return code_; }
  /// Counts a message sent to a pid that is not alive (not an error, as in Erlang).
  void count_dead_letter() { dead_letters_.fetch_add(1, std::memory_order_relaxed); }

  /// Registers `name` for the live process `p`. Names are owned: fails with
  /// permission_denied when the name belongs to another owner (held by its
  /// live process, or reserved to an account that keeps names), invalid when
  /// a process of the same owner holds it or `p` already has a name.
  status register_name(const std::string& name, const process& p);
  /// Removes the name of `id`, if it has one. Returns true if it had. With
  /// `at_exit`, a name of an account that keeps names stays reserved to it.
  bool unregister_name(pid id, bool at_exit = false);
  /// The live pid registered under `name`, or an empty pid.
  pid whereis(const std::string& name);
  /// From now on `w` (nullptr: none) is told of names (name_watch). It must
  /// outlive every call made to it: unset it only once processes are gone.
  void watch_names(name_watch* w) { name_watch_.store(w, std::memory_order_release); }
  /// Owner accounts (quotas), shared by whoever starts processes.
  owner_registry& owners() { return owners_; }

  /// Turns UPGRADE messages for `p` on or off (process.on_upgrade). Returns
  /// the previous setting.
  bool set_upgrade_interest(process& p, bool on);
  /// After code changed on disk: sends every process that asked for it an
  /// UPGRADE message {files = {...}} naming the changed files among its
  /// script and the packages its script requires (all of `changed` when
  /// `everything`). Returns how many processes were told.
  std::size_t notify_upgrade(const std::vector<std::string>& changed, bool everything);

  /// A new monitor reference, unique for the scheduler's life.
  std::uint64_t next_monitor_ref() { return next_ref_.fetch_add(1, std::memory_order_relaxed); }

  /// Sleeps submitted on this scheduler's workers wait in the worker's own
  /// timer wheel (runtime/timer_wheel.hpp). Adds one there and returns true,
  /// or returns false (leaving `done` as it was) when the calling thread is
  /// not one of this scheduler's workers. Times are steady_ns().
  bool add_timer(std::int64_t now_ns, std::int64_t deadline_ns, completion& done);
  /// Timers the workers hold (abandoned ones until purged) and those someone
  /// still waits for (scans). Any thread.
  std::size_t timers_pending() const;
  std::size_t timers_live() const;

  /// Number of live processes.
  std::size_t alive() const;
  scheduler_stats stats() const;
  unsigned worker_count() const { return static_cast<unsigned>(workers_.size()); }

  // --- internal, used by process and worker --------------------------------
  /// Queues a runnable process, preferring the worker it last ran on.
  void enqueue(process* p);
  const command_sink& commands() const { return commands_; }
  /// The modules processes may `require` (read-only; any thread).
  const module_registry& modules() const { return modules_; }
  /// Counters of the calling worker (a process only runs on a worker).
  static worker_counters& counters();
  /// Called by a worker when a process has ended.
  void retire(process* p, const exit_info& info);
  /// Another worker's queue to steal from, or nullptr; `self` is skipped.
  process* steal_for(worker& self);
  /// Wakes one parked worker other than `self`, if any (to steal surplus work).
  void wake_idle(const worker* self);
  void note_parked(int delta) { parked_.fetch_add(delta, std::memory_order_relaxed); }
  /// A worker left its park: wakes the watchdog if it dozes (cheap).
  void note_busy() { watchdog_->note_busy(); }
  /// Makes the watchdog look at running turns now (after a kill).
  void poke_watchdog() { watchdog_->poke(); }

 private:
  const command_sink& commands_;
  scheduler_options opts_;
  module_registry modules_;
  std::vector<std::unique_ptr<worker>> workers_;
  std::unique_ptr<process_table> table_;
  std::unique_ptr<runtime::watchdog> watchdog_;
  std::atomic<std::uint64_t> next_serial_{1};
  std::atomic<std::uint32_t> next_worker_{0};
  std::atomic<int> parked_{0};
  std::atomic<bool> accepting_{false};
  std::atomic<bool> running_{false};
  std::atomic<std::uint64_t> spawned_{0}, dead_letters_{0}, next_ref_{1};
  runtime::code_cache code_;
  std::mutex names_mu_;
  struct name_entry {
    pid id;             ///< empty: reserved to `owner`, nobody holds it now
    std::string owner;  ///< the owner of the process that registered it
    bool keep = false;  ///< its account keeps names (see register_name)
  };
  std::unordered_map<std::string, name_entry> names_;
  std::size_t reserved_names_ = 0;  // entries with an empty id
  std::atomic<name_watch*> name_watch_{nullptr};
  owner_registry owners_;
  std::unordered_map<std::uint64_t, std::string> name_of_;  // by serial
  std::mutex upgrade_mu_;
  std::unordered_map<std::uint64_t, pid> upgrade_;  // processes that want UPGRADE, by serial
};

}  // namespace luad::runtime
