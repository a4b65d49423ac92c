// The journal of durable runs in SQLite (see journal_sqlite.hpp): the writer's
// statements and their refusals, the outcome encoding, and the reads, which
// check every row they hand out.
#include "dispatcher/journal_sqlite.hpp"

#include "runtime/message_codec.hpp"

namespace luad::dispatcher {

using runtime::error_kind;

namespace {

// A run's steps and its last change come from its journal's last row (the
// (run, step) key finds it): the writer does not update the run at each step.
constexpr const char* k_run_columns =
    "SELECT id, workflow, owner, script, code_hash, args, state, detail,"
    " COALESCE((SELECT step + 1 FROM journal WHERE run = runs.id ORDER BY step DESC LIMIT 1), 0),"
    " created,"
    " MAX(updated, COALESCE((SELECT at FROM journal WHERE run = runs.id"
    " ORDER BY step DESC LIMIT 1), 0)),"
    " spawn FROM runs";

// More runs than this in the writer's cache of next steps, and it starts over.
constexpr std::size_t k_max_cached_runs = 65536;

// Steps a statement that returns no rows and resets it: SQLITE_OK or the error.
int run_to_end(statement& st) {
  int rc = st.step();
  st.reset();
  return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

// One read transaction on a read-only connection, so that several statements
// see one snapshot; ended when it goes out of scope.
class read_transaction {
 public:
  explicit read_transaction(sqlite3* db) : db_(db) { exec(db, "BEGIN"); }
  ~read_transaction() { sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr); }
  read_transaction(const read_transaction&) = delete;
  read_transaction& operator=(const read_transaction&) = delete;

 private:
  sqlite3* db_;
};

// The run on the current row of a k_run_columns query.
runtime::result<run_record> run_on_row(const statement& st) {
  run_record r;
  r.id = st.column_blob(0);
  r.workflow = st.column_blob(1);
  r.owner = st.column_blob(2);
  r.script = st.column_blob(3);
  r.code_hash = st.column_blob(4);
  r.args = st.column_blob(5);
  std::string state = st.column_blob(6);
  auto parsed = parse_run_state(state);
  if (!parsed) {
    return runtime::fail(error_kind::invalid,
                         "journal: run '" + r.id + "': unknown state '" + state + "'");
  }
  r.state = *parsed;
  r.detail = st.column_blob(7);
  r.steps = st.column_integer(8);
  r.created = st.column_real(9);
  r.updated = st.column_real(10);
  r.spawn = st.column_blob(11);
  return r;
}

// The entry on the current row of a history query, which must be step
// `expected` of `run`; `invalid` naming them when the row is not, or is corrupt.
runtime::result<journal_entry> read_entry(const statement& rows, std::string_view run,
                                          std::int64_t expected) {
  journal_entry e;
  e.run = std::string(run);
  e.step = rows.column_integer(0);
  if (e.step != expected) {
    return journal_at_step(
        run, expected,
        "missing from the journal (the next row is step " + std::to_string(e.step) + ")");
  }
  std::int64_t command = rows.column_integer(1), state = rows.column_integer(3);
  std::int64_t failed = rows.column_integer(4);
  e.args = rows.column_blob(2);
  e.result = rows.column_blob(5);
  if (std::string why = journal_entry_fault(command, state, failed, e, true); !why.empty())
    return journal_at_step(run, e.step, why);
  e.command = static_cast<runtime::command_id>(command);
  e.state = static_cast<step_state>(state);
  e.failed = failed != 0;
  e.at = rows.column_real(6);
  return e;
}

}  // namespace

journal_writer::journal_writer(sqlite3* db)
    : db_(db),
      insert_run_(db,
                  "INSERT INTO runs (id, workflow, owner, script, code_hash, args, state, detail,"
                  " created, updated, spawn)"
                  " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
                  " ON CONFLICT (id) DO NOTHING"),
      update_state_(db, "UPDATE runs SET state = ?2, detail = ?3, updated = ?4 WHERE id = ?1"),
      run_steps_(db,
                 "SELECT COALESCE((SELECT step + 1 FROM journal WHERE run = ?1"
                 " ORDER BY step DESC LIMIT 1), 0) FROM runs WHERE id = ?1"),
      step_state_(db, "SELECT state FROM journal WHERE run = ?1 AND step = ?2"),
      put_entry_(db,
                 "INSERT OR REPLACE INTO journal (run, step, command, args, state, failed, result,"
                 " at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"),
      put_message_(db,
                   "INSERT INTO inbox (run, seq, sender, topic, payload, at)"
                   " SELECT ?1, ?2, ?3, ?4, ?5, ?6 WHERE EXISTS (SELECT 1 FROM runs WHERE id = ?1)"
                   " ON CONFLICT (run, seq) DO NOTHING") {}

runtime::status journal_writer::create_run(const run_record& r, double now, int& rc) {
  rc = SQLITE_OK;
  if (runtime::status ok = check_new_run(r); !ok) return ok;
  insert_run_.reset().text(1, r.id).text(2, r.workflow).text(3, r.owner).text(4, r.script);
  insert_run_.text(5, r.code_hash).blob(6, r.args).text(7, run_state_name(r.state));
  insert_run_.text(8, r.detail).real(9, r.created > 0 ? r.created : now);
  insert_run_.real(10, r.updated > 0 ? r.updated : now);
  insert_run_.text(11, r.spawn.empty() ? std::string_view("{}") : std::string_view(r.spawn));
  rc = run_to_end(insert_run_);
  if (rc != SQLITE_OK) return sqlite_failure(db_, rc, "journal create_run");
  if (sqlite3_changes(db_) == 0) {
    return runtime::fail(error_kind::invalid, "journal: run '" + r.id + "' already exists");
  }
  remember(r.id, 0);
  return runtime::done{};
}

void journal_writer::remember(const std::string& run, std::int64_t next) {
  if (next_steps_.size() >= k_max_cached_runs && !next_steps_.count(run)) next_steps_.clear();
  next_steps_[run] = next;
}

void journal_writer::rolled_back() { next_steps_.clear(); }

runtime::status journal_writer::set_state(const journal_write::state_change& c, double now,
                                          int& rc) {
  update_state_.reset().text(1, c.run).text(2, run_state_name(c.state)).text(3, c.detail);
  update_state_.real(4, now);
  rc = run_to_end(update_state_);
  if (rc != SQLITE_OK) return sqlite_failure(db_, rc, "journal set_state");
  if (sqlite3_changes(db_) == 0) return journal_no_run(c.run);
  if (finished(c.state)) next_steps_.erase(c.run);  // (read again if it is appended to)
  return runtime::done{};
}

runtime::status journal_writer::claim(const journal_entry& e, int& rc) {
  rc = SQLITE_OK;
  if (std::string why = journal_entry_fault(e, false); !why.empty())
    return journal_at_step(e.run, e.step, why);
  // The usual case: the entry is the run's next step, known without a read.
  auto it = next_steps_.find(e.run);
  if (it == next_steps_.end()) {
    run_steps_.reset().text(1, e.run);
    rc = run_steps_.step();
    std::int64_t steps = rc == SQLITE_ROW ? run_steps_.column_integer(0) : 0;
    run_steps_.reset();
    if (rc == SQLITE_DONE) {
      rc = SQLITE_OK;
      return journal_no_run(e.run);
    }
    if (rc != SQLITE_ROW) return sqlite_failure(db_, rc, "journal append");
    rc = SQLITE_OK;
    remember(e.run, steps);
    it = next_steps_.find(e.run);
  }
  if (e.step == it->second) {
    ++it->second;  // (forgotten if the batch rolls back: rolled_back())
    return runtime::done{};
  }
  // Otherwise: a step out of order, or the end of a started one.
  return check_earlier(e, it->second, rc);
}

runtime::status journal_writer::check_earlier(const journal_entry& e, std::int64_t steps, int& rc) {
  std::int64_t state = 0;
  if (e.step >= 0 && e.step < steps) {  // read the row it would complete
    step_state_.reset().text(1, e.run).integer(2, e.step);
    rc = step_state_.step();
    state = rc == SQLITE_ROW ? step_state_.column_integer(0) : 0;
    step_state_.reset();
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return sqlite_failure(db_, rc, "journal append");
    rc = SQLITE_OK;
  }
  return step_rule(e, steps, state);
}

void journal_writer::put(const journal_entry& e, double now, int& rc) {
  put_entry_.reset().text(1, e.run).integer(2, e.step);
  put_entry_.integer(3, static_cast<std::int64_t>(e.command)).blob(4, e.args);
  put_entry_.integer(5, static_cast<std::int64_t>(e.state)).integer(6, e.failed ? 1 : 0);
  put_entry_.blob(7, e.result).real(8, e.at > 0 ? e.at : now);
  rc = run_to_end(put_entry_);
}

runtime::status journal_writer::append(const journal_entry& e, double now, int& rc) {
  rc = SQLITE_OK;
  if (std::string why = journal_entry_fault(e, true); !why.empty())
    return journal_at_step(e.run, e.step, why);
  runtime::status ok = claim(e, rc);
  if (!ok || rc != SQLITE_OK) return ok;
  put(e, now, rc);
  if (rc != SQLITE_OK) return sqlite_failure(db_, rc, "journal append");
  return ok;
}

runtime::status journal_writer::put_message(const inbox_message& m, double now, int& rc) {
  rc = SQLITE_OK;
  if (runtime::status ok = check_message(m); !ok) return ok;
  put_message_.reset().text(1, m.run).integer(2, m.seq).text(3, m.sender).blob(4, m.topic);
  put_message_.blob(5, m.payload).real(6, m.at > 0 ? m.at : now);
  rc = run_to_end(put_message_);
  if (rc != SQLITE_OK) return sqlite_failure(db_, rc, "journal append_message");
  if (sqlite3_changes(db_) == 0) return message_taken(m);
  return runtime::done{};
}

runtime::result<std::vector<run_record>> read_runs(sqlite3* db, bool unfinished_only) {
  // The condition is the partial index's, word for word, so that it is used.
  std::string sql =
      std::string(k_run_columns) +
      (unfinished_only ? " WHERE state NOT IN ('completed', 'failed', 'terminated')" : "") +
      " ORDER BY created, rowid";
  try {
    statement st(db, sql.c_str());
    std::vector<run_record> out;
    int rc;
    while ((rc = st.step()) == SQLITE_ROW) {
      auto r = run_on_row(st);
      if (!r) return std::move(r.error());
      out.push_back(std::move(*r));
    }
    if (rc != SQLITE_DONE) return sqlite_failure(db, rc, "journal runs");
    return out;
  } catch (const std::exception& e) {  // a statement that does not compile
    return runtime::fail(error_kind::unavailable, std::string("journal: runs: ") + e.what());
  }
}

runtime::result<run_record> read_run(sqlite3* db, std::string_view id) {
  try {
    statement st(db, (std::string(k_run_columns) + " WHERE id = ?1").c_str());
    st.text(1, id);
    int rc = st.step();
    if (rc == SQLITE_DONE) return journal_no_run(id);
    if (rc != SQLITE_ROW) return sqlite_failure(db, rc, "journal run");
    return run_on_row(st);
  } catch (const std::exception& e) {
    return runtime::fail(error_kind::unavailable, std::string("journal: run: ") + e.what());
  }
}

runtime::result<std::vector<journal_entry>> read_history(sqlite3* db, std::string_view run) {
  try {
    read_transaction tx(db);
    statement head(db, "SELECT 1 FROM runs WHERE id = ?1");
    head.text(1, run);
    int rc = head.step();
    if (rc == SQLITE_DONE) return journal_no_run(run);
    if (rc != SQLITE_ROW) return sqlite_failure(db, rc, "journal history");
    statement rows(db,
                   "SELECT step, command, args, state, failed, result, at FROM journal"
                   " WHERE run = ?1 ORDER BY step");
    rows.text(1, run);
    std::vector<journal_entry> out;
    while ((rc = rows.step()) == SQLITE_ROW) {
      auto e = read_entry(rows, run, static_cast<std::int64_t>(out.size()));
      if (!e) return std::move(e.error());
      out.push_back(std::move(*e));
    }
    if (rc != SQLITE_DONE) return sqlite_failure(db, rc, "journal history");
    return out;
  } catch (const std::exception& e) {  // BEGIN failed or a statement does not compile
    return runtime::fail(error_kind::unavailable, std::string("journal: history: ") + e.what());
  }
}

runtime::result<std::vector<inbox_message>> read_messages(sqlite3* db, std::string_view run) {
  try {
    statement rows(db,
                   "SELECT seq, sender, topic, payload, at FROM inbox WHERE run = ?1 ORDER BY seq");
    rows.text(1, run);
    std::vector<inbox_message> out;
    int rc;
    while ((rc = rows.step()) == SQLITE_ROW) {
      inbox_message m;
      m.run = std::string(run);
      m.seq = rows.column_integer(0);
      m.sender = rows.column_blob(1);
      m.topic = rows.column_blob(2);
      m.payload = rows.column_blob(3);
      m.at = rows.column_real(4);
      if (m.seq != static_cast<std::int64_t>(out.size()) || !runtime::valid_message(m.payload))
        return runtime::fail(error_kind::invalid, "journal: run '" + std::string(run) +
                                                      "' message " + std::to_string(out.size()) +
                                                      ": missing, or its payload does not decode");
      out.push_back(std::move(m));
    }
    if (rc != SQLITE_DONE) return sqlite_failure(db, rc, "journal messages");
    return out;
  } catch (const std::exception& e) {
    return runtime::fail(error_kind::unavailable, std::string("journal: messages: ") + e.what());
  }
}

}  // namespace luad::dispatcher
