// Durable runs as the daemon keeps them: starting one (a `spawn` with
// `durable`), resuming the unfinished ones when the daemon starts, suspending
// a run whose replay diverged, resuming and terminating by hand, ending them
// at shutdown so that they stay resumable, and listing them with their
// journals (docs/workflows.md, "Durable runs").
//
// DESIGN. A run is a row of the journal's `runs` table (its state, its
// detail, and the spawn request that started it) plus, while it runs, one
// process whose commands go through a dispatcher::durable_sink. The table is
// the truth: a process's exit writes the run's final state (completed with
// its results, failed with its error) unless the run is being suspended,
// terminated or the daemon is stopping, when the state was written already
// or must stay unfinished. Resuming rebuilds the spawn from the stored
// request (its code, args, limits, profile and peer) and replays the journal.
// A run the daemon cannot start again (its journal unreadable, its script
// gone or not compiling) is suspended with a report naming the run, and the
// other runs go on. Thread-safe: exits and suspensions arrive on worker and
// storage threads; protocol calls come from the io thread.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/json.hpp>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "dispatcher/cluster_backend.hpp"
#include "dispatcher/journal.hpp"
#include "runtime/code.hpp"
#include "runtime/pid.hpp"
#include "runtime/result.hpp"
#include "server/access.hpp"
#include "server/config.hpp"
#include "server/engine.hpp"
#include "server/events.hpp"

namespace luad::server {

/// A run that was started or resumed: its id and its process.
struct started_run {
  std::string run;
  runtime::pid pid;
};

/// The unfinished runs of one config workflow (durable_runs::resume_workflow).
struct workflow_runs {
  std::vector<started_run> live;       ///< with a process (resumed just now or before)
  std::vector<std::string> elsewhere;  ///< running on another node of the cluster
  std::vector<std::string> suspended;  ///< waiting for `luad workflows resume` or `terminate`
  std::size_t resumed = 0;             ///< how many of `live` were started again just now
};

/// What a new durable run is: its code and spawn, and what to store so that
/// it can be started again.
struct durable_request {
  runtime::chunk_ptr code;
  runtime::spawn_options so;  ///< without `commands` and `on_exit` (durable_runs sets them)
  /// The spawn request's params (`source` or `script`, `name`, `args`,
  /// `limits`, `profile`); `peer` ({uid, gid}) and `owner` are added.
  boost::json::object spawn;
  peer as;
  std::string script;  ///< for listings: the script's path or the submission's name
};

class durable_runs {
 public:
  /// `io`: where start()'s answers go. Stop `eng` before destroying this:
  /// the storage thread's completions of run-state writes call back into it.
  durable_runs(const config& cfg, engine& eng, events& ev, boost::asio::io_context& io);
  ~durable_runs();
  durable_runs(const durable_runs&) = delete;
  durable_runs& operator=(const durable_runs&) = delete;

  using started_fn = std::function<void(runtime::result<started_run>)>;
  /// Records a new run (durably) and then starts it; `then` runs once, on
  /// the io thread.
  void start(durable_request req, started_fn then);
  /// At daemon start: starts every unfinished run again by replay, except
  /// the suspended ones. Returns how many were started; one that cannot be
  /// started is suspended with a report (and logged), the rest go on.
  std::size_t resume_unfinished();
  /// A suspended run, or an unfinished one with no process: replays it again
  /// (after a code fix). `not_found`, or `invalid` for a run in another state.
  runtime::result<started_run> resume(const std::string& run);
  /// Ends a run for good (state `terminated`), killing its process if alive.
  /// `invalid` for a run already completed, failed or terminated.
  runtime::status terminate(const std::string& run);
  /// Every run, oldest first: {run, workflow, owner, script, state, steps,
  /// created, updated, pid?, detail?} (state `sleeping` / `waiting` while its
  /// process waits on a timer / a message). `detail` (results, errors) only
  /// for the runs `viewer` may read: its own, or all for a privileged one.
  runtime::result<boost::json::array> list(const actor& viewer);
  /// A run's journal: {run, state, steps: [{step, command, args, state,
  /// failed, result, at}]}; an unreadable journal is `invalid`, naming the step.
  runtime::result<boost::json::object> history(const std::string& run);
  /// The owner of `run` ("uid:N", "workflow:NAME"), or not_found.
  runtime::result<std::string> owner_of(const std::string& run);
  /// Shutdown: kills every live run's process with reason `shutdown`; their
  /// states stay unfinished so that the next start resumes them.
  void stop_all();

  // Daemons sharing a database (server/cluster.hpp; durable_cluster.cpp).

  /// From now on, runs are taken through `c` before this daemon starts or
  /// ends them, and new runs are queued for any node when this one holds
  /// `max_runs` (0: no bound).
  void set_cluster(dispatcher::cluster_backend& c, std::size_t max_runs);
  /// Starts runs this node has just claimed, by replay. One whose journal
  /// cannot be read for a passing reason (the database restarting) is kept
  /// for the next adopt(), not suspended: it is this node's now, and no
  /// other node would claim it while this one's lease holds.
  void adopt(const std::vector<dispatcher::run_record>& claimed);
  /// Ends the processes of runs another node owns now, leaving their
  /// journals and states to it.
  void drop_lost(const std::vector<std::string>& runs);
  /// The runs with a process here.
  std::vector<std::string> live_ids();
  /// How many more runs this node would take (max_runs less the live ones;
  /// SIZE_MAX without a bound).
  std::size_t room();
  /// Runs that processes here wait for (workflow.wait) and that have no
  /// process here: another node may end them.
  std::vector<std::string> waited_elsewhere();
  /// Of those, the ones that ended (cluster_backend::ended_runs): their
  /// waiters are answered as if they had ended here.
  void ended_elsewhere(const std::vector<dispatcher::run_record>& ended);
  /// Mail another node recorded for run `m.run` (cluster_backend::mail_for):
  /// moved into its inbox (dispatcher::durable_sink::take_mail). `then` runs
  /// once it is recorded, unless the answer is at once: not_found when the
  /// run has no process here, limit, or unavailable.
  runtime::outcome deliver_mail(dispatcher::inbox_message m,
                                std::function<void(runtime::outcome)> then);

  // Runs of config workflows (`durable = true`, server/workflows.hpp). Their
  // stored spawn request names the workflow, and a resume takes its script,
  // args, limits and permissions from the config as it is then.

  /// Records a new run of `w` and starts it; `tick` (unix seconds, 0: none)
  /// is the schedule tick it is for. Blocking (the io thread, at start and
  /// reload and at schedule ticks).
  runtime::result<started_run> start_workflow(const workflow_config& w, double tick = 0);
  /// `w`'s unfinished runs: each one with no process that is not suspended
  /// is started again by replay, on its script as it is now (a restart on
  /// new code). One that cannot start again is suspended with a report.
  runtime::result<workflow_runs> resume_workflow(const workflow_config& w);
  /// Kills the processes of workflow `name`'s runs (reason `killed`,
  /// "workflow stopped"); their states stay unfinished, so that the
  /// workflow's next start resumes them by replay. Returns the pids.
  std::vector<runtime::pid> stop_workflow(const std::string& name);
  /// The latest schedule tick a run of workflow `name` was started for, or 0.
  runtime::result<double> last_tick(const std::string& name);
  /// Whether a run of workflow `workflow` has a process now.
  bool has_live(const std::string& workflow);
  /// Workflow `name`'s runs for the `workflows` listing: every unfinished one
  /// and the latest finished one, [{run, state, steps, tick?, pid?}].
  boost::json::array runs_of(const std::string& name);

 private:
  struct live_run;
  /// `inbox`: the messages recorded for it (a resumed run; {} for a new one).
  runtime::result<started_run> launch(const dispatcher::run_record& rec,
                                      std::vector<dispatcher::journal_entry> past,
                                      std::vector<dispatcher::inbox_message> inbox,
                                      runtime::chunk_ptr code, runtime::spawn_options so);
  /// The code and spawn options of a stored run (its `spawn` request).
  /// `depth`: how many children deep `rec` is (a child's options are its
  /// parent's, rebuilt first).
  runtime::status rebuild(const dispatcher::run_record& rec, runtime::chunk_ptr& code,
                          runtime::spawn_options& so, int depth = 0);
  runtime::result<dispatcher::run_record> record(const std::string& run);
  /// Starts `rec` again by replay of its journal; suspends it (and logs)
  /// when it cannot start.
  /// `claimed`: this node owns it already (else, in a cluster, it is taken
  /// first, and a run another live node owns is left alone: `invalid`).
  runtime::result<started_run> relaunch(const dispatcher::run_record& rec, bool claimed = false);
  /// In a cluster: makes `run` this node's (cluster_backend::take).
  runtime::status take(const std::string& run);
  std::string workflow_of(const dispatcher::run_record& rec) const;
  runtime::pid live_pid(const std::string& run);
  runtime::status write_state(const std::string& run, dispatcher::run_state state,
                              std::string detail);
  void suspend(const std::shared_ptr<live_run>& r, std::string report);
  /// workflow.continue_as_new in run `r`: records run `next` (unless a
  /// replay finds it recorded already), completes `r` with {continued_as},
  /// starts `next` and ends `r`'s process. `done` fails only if it cannot.
  void continue_as_new(const std::shared_ptr<live_run>& r, std::string next, runtime::value args,
                       runtime::completion done);
  void start_next(const std::shared_ptr<live_run>& r, const dispatcher::run_record& next,
                  runtime::completion done);
  void ended(const std::shared_ptr<live_run>& r, const runtime::exit_info& e);

  // Children (durable_children.cpp): workflow.start and workflow.wait.
  struct waiter;
  /// Records child run `child` of `parent` (unless a replay finds it
  /// recorded) and starts it; `done` gets its id. Any thread.
  void start_child(const dispatcher::run_record& parent, std::string child, runtime::value args,
                   runtime::completion done);
  /// Completes `done` when run `run` (of owner `owner`) has ended, with its
  /// results or its error; `timeout` seconds (0: none). Any thread.
  void wait_run(std::string owner, std::string run, double timeout, runtime::completion done);
  /// Run `run`'s final state has been written: answers those waiting for it
  /// (or moves them to the run it continued as).
  void run_ended(const std::string& run, dispatcher::run_state state, const std::string& detail);
  /// Answers those waiting for `run` (or moves them to the run it continued as).
  void answer_waiters(const std::string& run, dispatcher::run_state state,
                      const std::string& detail);
  /// Shutdown: forgets the waiters (their processes are being killed).
  void drop_waiters();
  /// rebuild() for a child run ({"parent", "script_path"}).
  runtime::status rebuild_child(const dispatcher::run_record& rec, const boost::json::object& spawn,
                                runtime::chunk_ptr& code, runtime::spawn_options& so, int depth);

  const config& cfg_;
  engine& eng_;
  events& ev_;
  boost::asio::io_context& io_;
  std::mutex mu_;
  std::unordered_map<std::string, std::shared_ptr<live_run>> live_;  // guarded by mu_
  bool stopping_ = false;                                            // guarded by mu_
  std::vector<dispatcher::run_record> adopt_again_;  // claimed, not started yet (guarded by mu_)
  dispatcher::cluster_backend* cluster_ = nullptr;   // set before any run starts
  std::size_t max_runs_ = 0;
  std::atomic<std::size_t> starting_{0};  // new runs recorded here, not live yet
  /// Processes waiting for a run to end, by run id (guarded by mu_).
  std::unordered_map<std::string, std::vector<std::shared_ptr<waiter>>> waiters_;
};

/// A fresh run id: "r-" and 16 hex digits.
std::string new_run_id();

}  // namespace luad::server
