// The rules of the journal of durable runs that do not depend on the
// database (journal.hpp is the interface): what makes an entry, a run or a
// message acceptable, which step an append may take, the errors that refuse
// them, and how an outcome is stored in an entry. Each backend
// (journal_sqlite.*, postgres_journal.*) applies these to its own rows, so a
// run is refused for the same reasons, in the same words, on every database.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "dispatcher/journal.hpp"

namespace luad::dispatcher {

/// A journal write waiting in a backend's writer queue: what to write, and
/// whom to tell once its batch has committed or failed.
struct journal_write {
  struct state_change {
    std::string run;
    run_state state = run_state::running;
    std::string detail;
  };
  std::variant<run_record, state_change, journal_entry, inbox_message> what;
  journal_backend::written_fn written;  ///< create_run, set_state, append, append_message
  /// apply_and_append (`what` is its entry; the job's command its store op)
  journal_backend::applied_fn applied;

  /// Calls the callback that is set: `applied` with `o`, `written` with its status.
  void finish(runtime::outcome o);
  /// The run this write is about.
  const std::string& run() const;
};

/// `not_found` for a write to run `run`, which does not exist.
runtime::error journal_no_run(std::string_view run);
/// `invalid`, naming the run and the step.
runtime::error journal_at_step(std::string_view run, std::int64_t step, const std::string& why);

/// What is wrong with an entry's fields (the numbers as stored), or "" when
/// nothing is. The result is checked when `with_result`: a `done` entry needs
/// one; a `started` one may have none.
std::string journal_entry_fault(std::int64_t command, std::int64_t state, std::int64_t failed,
                                const journal_entry& e, bool with_result);
std::string journal_entry_fault(const journal_entry& e, bool with_result);

/// A new run's own faults (no id, args that do not decode), or done.
runtime::status check_new_run(const run_record& r);
/// A message's own faults (a payload that does not decode), or done.
runtime::status check_message(const inbox_message& m);
/// `invalid` for message `m`, whose seq is taken or whose run does not exist.
runtime::error message_taken(const inbox_message& m);

/// May `e` take a step of its run, which has `steps` steps, the one at
/// `e.step` (if earlier) being in `earlier` (0: no row)? The next step is
/// always free (the caller counts it); an earlier one only when its row is
/// `started` and `e` completes it.
runtime::status step_rule(const journal_entry& e, std::int64_t steps, std::int64_t earlier);

/// Stores `o` in `e`: the value as `result`, or the error as the map
/// {kind, message, retryable} with `failed` set.
void record_outcome(journal_entry& e, const runtime::outcome& o);
/// The outcome record_outcome stored in `e`; nullopt when its result does not
/// decode (a corrupt journal).
std::optional<runtime::outcome> read_outcome(const journal_entry& e);

}  // namespace luad::dispatcher
