// The journal of durable runs on PostgreSQL (journal.hpp is the interface):
// its tables, the journal part of a postgres_store batch, and the blocking
// reads. postgres_store.cpp owns the sessions and the batch cycle.
//
// DESIGN. A batch writes in two round trips (postgres_store.hpp): round one
// reads every run, step and message seq its journal writes touch; the writes
// are then checked in order against those rows, in memory, by the rules all
// backends share (journal_rules.hpp), and round two writes what changed, one
// statement per table for the whole batch. A batch holds its runs' locks
// (postgres_store.hpp) and their rows FOR UPDATE: two daemons appending to
// one run take turns, and the second finds the step taken. Each run row
// names its owner node and the epoch of its claim; a write to a run this
// node does not own at that epoch is refused (fencing, cluster_backend.hpp).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "dispatcher/journal_rules.hpp"
#include "dispatcher/pg_session.hpp"

namespace luad::dispatcher {

/// The journal's tables, each statement safe to run again (postgres_store
/// runs them under its migration lock).
const std::vector<const char*>& journal_schema();

/// The journal writes of one batch: what they read, the rules applied to
/// those rows, and what they write. Used on the store's io thread only.
class pg_journal_batch {
 public:
  /// This node and the epochs of the runs it owns (dispatcher/cluster_backend.hpp):
  /// the batch refuses writes to a run another node owns now. Node 0: not
  /// in a cluster, nothing is fenced. Both must outlive the batch.
  struct owner {
    std::uint32_t node = 0;
    std::unordered_map<std::string, std::int64_t>* epochs = nullptr;
  };
  pg_journal_batch() = default;
  explicit pg_journal_batch(owner o) : owner_(o) {}
  /// Whether a run created here was queued for any node (round two then
  /// wakes the nodes).
  bool queued_any() const { return queued_any_; }

  /// Notes what `w` reads; called for each journal write of the batch
  /// before reads().
  void want(const journal_write& w);
  bool empty() const { return want_runs_.empty(); }
  /// The runs the batch's journal writes touch (locked in round one).
  const std::set<std::string>& runs_wanted() const { return want_runs_; }
  /// Round one's statements (read_statements of them), appended to `out`.
  void reads(std::vector<pg_statement>& out) const;
  static constexpr std::size_t read_statements = 3;
  /// Takes what those statements returned, in their order.
  void take(const pg_rows& runs, const pg_rows& steps, const pg_rows& seqs);

  // The rules, on the rows taken: each refusal changes nothing. Times left 0
  // become `now`.
  runtime::status create_run(const run_record& r, double now);
  runtime::status set_state(const journal_write::state_change& c, double now);
  /// Takes `e.step` of its run for `e`, or refuses (journal_rules.hpp's
  /// step_rule); put() then writes the entry.
  runtime::status claim(const journal_entry& e);
  void put(const journal_entry& e, double now);
  /// A decodable result for a `done` entry, claim(), then put().
  runtime::status append(const journal_entry& e, double now);
  runtime::status put_message(const inbox_message& m, double now);

  /// The outcome recorded at `e`'s step when that step was done before this
  /// batch (as round one read it), or nullopt: a write retried after its
  /// commit's answer was lost finds its own entry there.
  std::optional<runtime::outcome> done_before(const journal_entry& e) const;

  /// Round two's statements for what changed, appended to `out`.
  void writes(std::vector<pg_statement>& out) const;

 private:
  using step_key = std::pair<std::string, std::int64_t>;
  struct run_row;
  /// A refusal when another node owns `row`'s run now, or done.
  runtime::status fence(const std::string& run, const run_row& row) const;

  struct run_row {
    bool exists = false;   // in the database, or created by this batch
    bool created = false;  // by this batch: inserted whole in round two
    bool dirty = false;    // changed: updated in round two
    std::string state;     // as stored
    run_record rec;        // of a row read: detail, steps, updated, node and epoch only
  };
  owner owner_;
  bool queued_any_ = false;
  std::vector<std::string> created_;  // runs created by this batch, in order
  std::set<std::string> want_runs_;
  std::set<step_key> want_steps_, want_seqs_;
  std::map<std::string, run_row, std::less<>> runs_;
  std::map<step_key, std::int64_t> step_states_;  // rows read or put: their state
  std::map<step_key, journal_entry> entries_;     // to write (the last one per step)
  std::map<step_key, journal_entry> read_done_;   // done rows round one read
  std::set<step_key> seqs_;                       // messages there or put
  std::vector<inbox_message> messages_;           // to write
};

/// Runs a batch on the reader's session and waits for it (never on the
/// store's io thread).
using pg_blocking_run = std::function<pg_batch_result(std::vector<pg_statement>)>;

/// The run columns every read of a whole run selects, in run_on_row's
/// order; `alias` prefixes each ("r." or "").
std::string run_columns(std::string_view alias = "");
/// The run on row `i` of rows selected with run_columns().
runtime::result<run_record> run_on_row(const pg_rows& rows, int i);

/// journal_backend's reads, each in one snapshot; rows that cannot be read
/// back fail with `invalid` as on SQLite (journal.hpp).
runtime::result<std::vector<run_record>> pg_read_runs(const pg_blocking_run& run,
                                                      bool unfinished_only);
runtime::result<run_record> pg_read_run(const pg_blocking_run& run, std::string_view id);
runtime::result<std::vector<journal_entry>> pg_read_history(const pg_blocking_run& run,
                                                            std::string_view id);
runtime::result<std::vector<inbox_message>> pg_read_messages(const pg_blocking_run& run,
                                                             std::string_view id);

}  // namespace luad::dispatcher
