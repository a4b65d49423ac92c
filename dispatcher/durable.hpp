// A durable run's command sink: while the run replays, each command is
// answered from its journal; after that, each command is recorded with its
// outcome before the process sees the outcome (docs/workflows.md, "Durable
// runs").
//
// DESIGN. The process yields commands as every process does; only the sink
// differs (runtime::spawn_options::commands). A process has at most one
// command outstanding, so steps are numbered in the order they are asked.
// Replay compares each command with the journal's entry at the same step
// (command id and encoded arguments): a difference is a nondeterminism error,
// and the run stops with a report instead of going on with a history that is
// not its own. Live, the outcome is journaled first and handed to the process
// only once the write is durable, so what a run has seen is always in its
// journal. A write that fails (a full disk) stops the run the same way; it is
// resumable. What each kind of command promises:
//   - store_op: the write and its journal entry commit in one transaction
//     (journal_backend::apply_and_append): exactly once;
//   - clock_sleep: its deadline is journaled before the timer starts, so a
//     sleep interrupted by a crash ends at its original deadline;
//   - fetch_request: at least once (the request may have left before a
//     crash); it carries `Idempotency-Key: RUN-STEP` for servers to dedupe;
//   - workflow_value: recorded, replayed unchanged (side_effect's function
//     runs only live: its probe is answered from the journal on replay);
//     continue_as_new is not a step: it ends the run (continue_fn);
//   - receive (workflow_value {kind = "receive"}): messages sent to the run
//     are recorded in its inbox first (take_message), and a receive is a step
//     whose result is the message it took (or nil for a timeout): each message
//     is received exactly once, across crashes. A receive's timeout starts
//     again after a restart.
//   - children (workflow.start, workflow.wait; process.spawn in a durable
//     run): a child is a durable run of its own, whose id comes from this
//     run's id and the step, so that a replay that reaches the start again
//     (a crash before the step was journaled) names the child it started
//     already and the server does not start it twice; the step records the
//     id. A wait is a step whose result is the child's end (its results, or
//     its error), recorded once the child's end is durable.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dispatcher/journal.hpp"
#include "dispatcher/registry.hpp"

namespace luad::dispatcher {

class durable_sink final : public runtime::command_sink,
                           public std::enable_shared_from_this<durable_sink> {
 public:
  /// Called once, from any thread, when the run cannot go on: `report` is a
  /// JSON object (reason "nondeterminism" or "journal", step, expected, got,
  /// code_hash). The server suspends the run and ends its process.
  using stop_fn = std::function<void(std::string report)>;
  /// workflow.continue_as_new: `next_run` is the new run's id (the same for
  /// the same run and step, so a replay after a crash names the run it
  /// started already), `args` its args (message-codec encodings). The server
  /// ends this run and starts the next; it completes `done` only to fail.
  using continue_fn =
      std::function<void(std::string next_run, runtime::value args, runtime::completion done)>;

  /// The server's side of children (child_hooks::start and ::wait). Each
  /// completes `done` once, on any thread: start with the child's run id,
  /// wait with the array of the child's results or its error (`timeout` when
  /// `timeout` seconds pass first; 0: no bound).
  struct child_hooks {
    std::function<void(std::string child, runtime::value args, runtime::completion done)> start;
    std::function<void(std::string run, double timeout, runtime::completion done)> wait;
  };

  /// `history`: the run's journal so far (replayed first); `live`: where live
  /// commands go (the registry).
  /// `max_steps`: the journal's bound (0: none); past it each command fails
  /// with `limit` and nothing more is journaled.
  /// `on_continue`: empty, continue_as_new fails with `invalid`; the same for
  /// each of `children` and workflow.start and .wait.
  durable_sink(std::string run, std::string code_hash, std::vector<journal_entry> history,
               const runtime::command_sink& live, journal_backend& journal, stop_fn stop,
               std::size_t max_steps = 0, continue_fn on_continue = {}, child_hooks children = {});

  void submit(command&& cmd, completion&& done) const override;

  /// A message sent to this run (runtime/post.cpp): recorded in its inbox
  /// (journal_backend::append_message) before the run may receive it;
  /// `limit` past the bounds set by limit_inbox().
  std::optional<runtime::outcome> take_message(
      runtime::pid from, std::string_view topic, std::string_view body,
      std::function<void(runtime::outcome)> recorded = {}) const override;
  /// A message another node recorded for this run (cluster_backend::
  /// mail_for; `m.mail` its row): moved into the inbox as take_message
  /// records one, the row deleted in the same transaction. `then` runs once
  /// it is recorded, unless the answer (limit, stopped) is at once.
  runtime::outcome take_mail(inbox_message m, std::function<void(runtime::outcome)> then) const;
  /// math.random's seed: from the run id, so a replay draws what the live
  /// run drew (a new run, continue_as_new's too, draws others).
  std::optional<std::uint64_t> random_seed() const override;
  bool journaled() const override { return true; }
  /// Bounds of the messages recorded and not received yet (0: none).
  void limit_inbox(std::size_t messages, std::size_t bytes);
  /// At a resume, before the process starts: the run's recorded messages;
  /// those its journal has received already are dropped.
  void restore_inbox(std::vector<inbox_message> recorded);
  /// The process has ended: drops a waiting receive (its completion holds
  /// the process, which holds this sink).
  void abandon() const;
  /// continue_as_new: from now on messages are refused (`unavailable`: send
  /// again, to the next run); returns those recorded and not received, once
  /// the ones being recorded are, for the next run to take over.
  std::vector<inbox_message> close_inbox() const;

  /// Steps answered so far (replayed or live).
  std::int64_t steps() const;
  /// True while the journal still has entries to answer from.
  bool replaying() const;
  const std::string& run() const { return run_; }

 private:
  struct step_done;      // completion_target of a live step (durable.cpp)
  struct receive_timer;  // the timeout of a waiting receive (durable.cpp)
  struct waiting_receive {
    std::vector<std::string> topics;  // empty: any
    journal_entry entry;
    runtime::completion done;
    std::uint64_t serial = 0;
  };
  void receive_live(command&& cmd, completion&& done, std::size_t step) const;
  void receive_timed_out(std::uint64_t serial) const;
  /// Journals what a receive got (a message, or nil for a timeout) and then
  /// hands it to the process.
  void answer_receive(journal_entry e, completion done, runtime::value got) const;
  /// A message's record is durable (or failed: the run stops).
  runtime::outcome take(inbox_message m, std::function<void(runtime::outcome)> then) const;
  void recorded(inbox_message m, runtime::status st) const;
  void replay(command&& cmd, completion&& done, std::size_t step) const;
  void live(command&& cmd, completion&& done, std::size_t step) const;
  /// workflow.start and .wait, live: the server does them (children_).
  void child_live(command&& cmd, completion&& done, std::size_t step) const;
  void stop(std::string report) const;
  journal_entry entry_for(const command& cmd, std::size_t step) const;

  const std::string run_;
  const std::string code_hash_;
  const std::vector<journal_entry> history_;
  const runtime::command_sink& live_;
  journal_backend& journal_;
  const stop_fn stop_fn_;
  const std::size_t max_steps_;
  const continue_fn continue_fn_;
  const child_hooks children_;
  mutable std::mutex mu_;
  mutable std::size_t next_ = 0;  // the next step (guarded by mu_)
  mutable bool stopped_ = false;  // guarded by mu_
  // The inbox (guarded by mu_): recorded messages not received yet, in seq
  // order; the next seq; those being recorded; a receive waiting for one.
  mutable std::deque<inbox_message> inbox_;
  mutable std::size_t inbox_bytes_ = 0;
  mutable std::int64_t next_seq_ = 0;
  mutable std::size_t recording_ = 0;
  mutable std::condition_variable recorded_cv_;  // recording_ fell to 0
  mutable std::optional<waiting_receive> waiting_;
  mutable std::uint64_t wait_serial_ = 0;
  mutable bool inbox_closed_ = false;
  std::size_t max_messages_ = 0, max_bytes_ = 0;  // set before the process starts
};

}  // namespace luad::dispatcher
