// The journal of durable runs in SQLite: the `runs`, `journal` and `inbox` tables of
// the store's file. Writes run on the storage writer's connection inside its
// batch transaction (dispatcher/storage.cpp queues, commits and answers them);
// reads block on a connection of their own. The interface is journal.hpp;
// the rules every backend shares are journal_rules.hpp.
#pragma once

#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "dispatcher/journal_rules.hpp"
#include "dispatcher/sqlite.hpp"

namespace luad::dispatcher {

/// The journal's statements on the writer's connection. Each call runs inside
/// the writer's open transaction and changes nothing when it refuses
/// (`invalid`, `not_found`); a database failure goes to `rc` instead, and the
/// batch rolls back. Times left 0 (created, updated, at) become `now`. Writer
/// thread only.
class journal_writer {
 public:
  explicit journal_writer(sqlite3* db);

  runtime::status create_run(const run_record& r, double now, int& rc);
  runtime::status set_state(const journal_write::state_change& c, double now, int& rc);
  /// Takes `e.step` of `e.run` for `e`, or refuses: the step must be the
  /// run's next one or a `started` one that `e` completes; the run must
  /// exist, the command be known, the args decode. `e.result` is not looked
  /// at. Then put() writes the entry. The next step of each run written to
  /// lately is kept here (read once from the journal), so the usual claim
  /// reads and writes nothing.
  runtime::status claim(const journal_entry& e, int& rc);
  /// Writes `e`, whose step claim() has passed.
  void put(const journal_entry& e, double now, int& rc);
  /// A decodable result for a `done` entry, claim(), then put().
  runtime::status append(const journal_entry& e, double now, int& rc);
  /// Records `m`: its run must exist, its seq be new, its payload decode.
  runtime::status put_message(const inbox_message& m, double now, int& rc);
  /// The writer's transaction rolled back: the next steps claimed in it
  /// were not written, so all are forgotten (and read again).
  void rolled_back();

 private:
  runtime::status check_earlier(const journal_entry& e, std::int64_t steps, int& rc);
  void remember(const std::string& run, std::int64_t next);

  sqlite3* db_;
  statement insert_run_, update_state_, run_steps_, step_state_, put_entry_, put_message_;
  /// Each run's next step, as claimed in this transaction and those before.
  std::unordered_map<std::string, std::int64_t> next_steps_;
};

/// journal_backend::runs, in one read transaction on `db`.
runtime::result<std::vector<run_record>> read_runs(sqlite3* db, bool unfinished_only);
/// journal_backend::run, on `db`.
runtime::result<run_record> read_run(sqlite3* db, std::string_view id);
/// journal_backend::history, in one read transaction on `db`.
runtime::result<std::vector<journal_entry>> read_history(sqlite3* db, std::string_view run);
/// journal_backend::messages, on `db`.
runtime::result<std::vector<inbox_message>> read_messages(sqlite3* db, std::string_view run);

}  // namespace luad::dispatcher
