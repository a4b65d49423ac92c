// The journal of durable runs (dispatcher::storage as a journal_backend):
// runs, appends and their refusals, restarts and group commits on both
// backends; on SQLite's file, the store operation fused with its entry under
// injected faults, corrupt rows, and the migrations of older files
// (PostgreSQL's own cases: journal_postgres_test.cpp).
#include <sqlite3.h>

#include "tests/dispatcher/journal_support.hpp"

namespace {

using namespace luad::test::journal_support;

// Runs `sql` on the file through a connection of its own, as an outsider would.
void raw_sql(const std::string& db_path, const std::string& sql) {
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open(db_path.c_str(), &db) == SQLITE_OK);
  char* msg = nullptr;
  int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &msg);
  std::string why = msg ? msg : "";
  sqlite3_free(msg);
  sqlite3_close(db);
  REQUIRE_MESSAGE(rc == SQLITE_OK, why);
}

// The first column of the first row of `sql` as text ("" when there is none).
std::string raw_text(const std::string& db_path, const std::string& sql) {
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  REQUIRE(sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr) == SQLITE_OK);
  std::string out;
  if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
    out = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
  sqlite3_finalize(st);
  sqlite3_close(db);
  return out;
}

}  // namespace

TEST_CASE("journal: runs are created, steps appended and completed, history and runs read back") {
  for_each_backend([](const opener& open) {
    auto sp = open();
    storage& s = *sp;
    s.start();
    CHECK(create(s, "r1").ok());
    status again = create(s, "r1");
    REQUIRE_FALSE(again.ok());
    CHECK(again.error().kind == error_kind::invalid);
    CHECK(has(again.error().message, "'r1' already exists"));

    CHECK(append(s, entry("r1", 0, value("first"))).ok());
    CHECK(append(s, entry("r1", 1, {}, step_state::started)).ok());  // a sleep's deadline
    auto h = s.history("r1");
    REQUIRE_MESSAGE(h.ok(), h.error().message);
    REQUIRE(h->size() == 2);
    CHECK((*h)[1].state == step_state::started);
    CHECK(append(s, entry("r1", 1, value(42))).ok());  // ... then its end
    h = s.history("r1");
    REQUIRE(h.ok());
    REQUIRE(h->size() == 2);
    CHECK((*h)[0].step == 0);
    CHECK((*h)[0].command == command_id::clock_sleep);
    CHECK((*h)[0].args == encoded(value(1.5)));
    CHECK((*h)[0].result == encoded(value("first")));
    CHECK((*h)[1].state == step_state::done);
    CHECK((*h)[1].result == encoded(value(42)));
    CHECK((*h)[1].at > 0);

    status gap = append(s, entry("r1", 5));
    REQUIRE_FALSE(gap.ok());
    CHECK(gap.error().kind == error_kind::invalid);
    CHECK(has(gap.error().message, "not the run's next step (2)"));
    status nobody = append(s, entry("ghost", 0));
    REQUIRE_FALSE(nobody.ok());
    CHECK(nobody.error().kind == error_kind::not_found);
    CHECK(s.history("ghost").error().kind == error_kind::not_found);
    CHECK(set_state(s, "ghost", run_state::failed, "{}").error().kind == error_kind::not_found);

    CHECK(create(s, "r2").ok());
    auto all = s.runs(false);
    REQUIRE(all.ok());
    CHECK(ids(*all) == std::vector<std::string>{"r1", "r2"});
    const run_record& r1 = all->front();
    CHECK(r1.steps == 2);
    CHECK(r1.workflow == "orders");
    CHECK(r1.args == run_named("r1").args);
    CHECK(r1.state == run_state::running);
    CHECK(r1.created > 0);
    CHECK(r1.updated >= r1.created);

    CHECK(set_state(s, "r1", run_state::completed, "[\"done\"]").ok());
    auto unfinished = s.runs(true);
    REQUIRE(unfinished.ok());
    CHECK(ids(*unfinished) == std::vector<std::string>{"r2"});
    all = s.runs(false);
    REQUIRE(all.ok());
    CHECK(all->front().state == run_state::completed);
    CHECK(all->front().detail == "[\"done\"]");
    // One run by id reads the same as in the list.
    auto one = s.run("r1");
    REQUIRE(one.ok());
    CHECK(one->state == run_state::completed);
    CHECK(one->steps == 2);
    CHECK(one->workflow == "orders");
    auto none = s.run("r9");
    REQUIRE_FALSE(none.ok());
    CHECK(none.error().kind == error_kind::not_found);
  });
}

TEST_CASE("journal: a step is recorded once; a done step is refused and the first record stays") {
  for_each_backend([](const opener& open) {
    auto sp = open();
    storage& s = *sp;
    s.start();
    REQUIRE(create(s, "r").ok());
    REQUIRE(append(s, entry("r", 0, value("A"))).ok());
    status twice = append(s, entry("r", 0, value("B")));
    REQUIRE_FALSE(twice.ok());
    CHECK(twice.error().kind == error_kind::invalid);
    CHECK(has(twice.error().message, "run 'r' step 0: already done"));
    REQUIRE(append(s, entry("r", 1, {}, step_state::started)).ok());
    status restart = append(s, entry("r", 1, {}, step_state::started));
    REQUIRE_FALSE(restart.ok());
    CHECK(has(restart.error().message, "step 1: already started"));
    // A fused store operation on a done step is refused before the store is touched.
    REQUIRE(append(s, entry("r", 1, value("slept"))).ok());
    outcome fused = apply(s, entry("r", 1), store_set("k", value(1)));
    REQUIRE(fused.err);
    CHECK(has(fused.err->message, "already done"));
    CHECK(s.namespace_bytes("jt") == 0);

    auto h = s.history("r");
    REQUIRE(h.ok());
    REQUIRE(h->size() == 2);
    CHECK((*h)[0].result == encoded(value("A")));
    CHECK((*h)[1].result == encoded(value("slept")));
    auto runs = s.runs(false);
    REQUIRE(runs.ok());
    CHECK(runs->at(0).steps == 2);
  });
}

TEST_CASE("journal: a store operation and its entry land together, or neither under a fault") {
  temp_dir d("luad_journal");
  std::string db = (d.path() / "luad.db").string();
  storage s(d.path().string());
  s.start();
  REQUIRE(create(s, "r").ok());
  journal_entry e = entry("r", 0);
  e.command = command_id::store_op;
  outcome o = apply(s, e, store_set("k", value("v")));
  REQUIRE_FALSE(o.err);
  CHECK(o.val == value(true));
  CHECK(raw_text(db, "SELECT count(*) FROM kv WHERE key = x'6b'") == "1");
  // An operation's own error is its journaled result.
  e.step = 1;
  outcome bad = apply(s, e, value::map{{"op", "incr"}, {"ns", "jt"}, {"key", "k"}});
  REQUIRE(bad.err);
  CHECK(bad.err->kind == error_kind::invalid);
  auto h = s.history("r");
  REQUIRE(h.ok());
  REQUIRE(h->size() == 2);
  CHECK((*h)[0].result == encoded(value(true)));
  CHECK_FALSE((*h)[0].failed);
  CHECK((*h)[1].failed);
  CHECK(has((*h)[1].result, "not an integer"));

  // The store's write is applied, then its entry fails (a trigger an outsider
  // left in the file; SQLite undoes just that statement): neither lands.
  raw_sql(db,
          "CREATE TRIGGER boom BEFORE INSERT ON journal WHEN NEW.step = 2"
          " BEGIN SELECT RAISE(ABORT, 'boom'); END");
  e.step = 2;
  o = apply(s, e, store_set("small", value(1)));
  REQUIRE(o.err);
  CHECK(o.err->kind == error_kind::unavailable);
  CHECK(has(o.err->message, "boom"));
  CHECK(raw_text(db, "SELECT count(*) FROM kv WHERE key = x'736d616c6c'") == "0");
  raw_sql(db, "DROP TRIGGER boom");

  // A full disk (SQLite may then roll the whole transaction back itself) and
  // a read-only file: neither lands either.
  s.inject(storage::fault::disk_full);
  e.step = 2;
  e.args = encoded(value(std::string(std::size_t{256} * 1024, 'x')));
  o = apply(s, e, store_set("small", value(1)));
  REQUIRE(o.err);
  CHECK(o.err->kind == error_kind::unavailable);
  s.inject(storage::fault::read_only);
  outcome ro = apply(s, entry("r", 2), store_set("small", value(1)));
  REQUIRE(ro.err);
  CHECK(ro.err->kind == error_kind::unavailable);
  status plain = append(s, entry("r", 2));
  REQUIRE_FALSE(plain.ok());
  CHECK(plain.error().kind == error_kind::unavailable);
  CHECK(raw_text(db, "SELECT count(*) FROM kv WHERE key = x'736d616c6c'") == "0");
  CHECK(raw_text(db, "SELECT count(*) FROM journal WHERE run = 'r'") == "2");
  CHECK(raw_text(db, "SELECT MAX(step) + 1 FROM journal WHERE run = 'r'") == "2");
  CHECK(s.history("r")->size() == 2);

  s.inject(storage::fault::none);
  o = apply(s, e, store_set("small", value(1)));
  REQUIRE_FALSE(o.err);
  CHECK(raw_text(db, "SELECT count(*) FROM kv WHERE key = x'736d616c6c'") == "1");
  // A read fused with its entry runs on the writer, in its transaction, and is journaled too.
  e = entry("r", 3);
  e.command = command_id::store_op;
  o = apply(s, e, value::map{{"op", "get"}, {"ns", "jt"}, {"key", "k"}});
  REQUIRE_FALSE(o.err);
  CHECK(o.val == value(encoded(value("v"))));
  auto after = s.history("r");
  REQUIRE(after.ok());
  REQUIRE(after->size() == 4);
  CHECK((*after)[3].result == encoded(o.val));
}

TEST_CASE("journal: runs, entries and fused writes survive a stop and a restart") {
  for_each_backend([](const opener& open) {
    {
      auto first = open();
      storage& s = *first;
      s.start();
      REQUIRE(create(s, "a").ok());
      REQUIRE(create(s, "b").ok());
      for (int i = 0; i < 10; ++i) REQUIRE(append(s, entry("a", i, value(i))).ok());
      REQUIRE(append(s, entry("b", 0, {}, step_state::started)).ok());
      REQUIRE_FALSE(apply(s, entry("a", 10), store_set("kept", value("yes"))).err);
      REQUIRE(set_state(s, "a", run_state::waiting, "{}").ok());
      s.stop();
    }
    auto sp = open();
    storage& s = *sp;
    s.start();
    auto runs = s.runs(true);
    REQUIRE(runs.ok());
    REQUIRE(ids(*runs) == std::vector<std::string>{"a", "b"});
    CHECK(runs->at(0).steps == 11);
    CHECK(runs->at(0).state == run_state::waiting);
    auto a = s.history("a");
    REQUIRE(a.ok());
    REQUIRE(a->size() == 11);
    CHECK((*a)[7].result == encoded(value(7)));
    CHECK((*a)[10].result == encoded(value(true)));
    auto b = s.history("b");
    REQUIRE(b.ok());
    REQUIRE(b->size() == 1);
    CHECK((*b)[0].state == step_state::started);
    CHECK(s.namespace_bytes("jt") > 0);                   // the fused write's key
    CHECK(append(s, entry("b", 0, value("woke"))).ok());  // the restarted run goes on
  });
}

TEST_CASE("journal: a corrupt row fails history with invalid naming the run and the step") {
  temp_dir d("luad_journal");
  std::string db = (d.path() / "luad.db").string();
  storage s(d.path().string());
  s.start();
  for (const char* run : {"ok", "cut", "gap", "tail", "cmd", "state"}) {
    REQUIRE(create(s, run).ok());
    for (int i = 0; i < 4; ++i) {
      REQUIRE(append(s, entry(run, i, value::map{{"n", i}, {"list", value::array{1, 2, 3}}})).ok());
    }
  }
  raw_sql(db,
          "UPDATE journal SET result = substr(result, 1, length(result) - 1)"
          " WHERE run = 'cut' AND step = 2;"
          "DELETE FROM journal WHERE run = 'gap' AND step = 1;"
          "DELETE FROM journal WHERE run = 'tail' AND step = 3;"
          "UPDATE journal SET command = 999 WHERE run = 'cmd' AND step = 0;"
          "UPDATE journal SET state = 7 WHERE run = 'state' AND step = 3;");
  auto failure = [&](const char* run) { return history_error(s, run); };
  std::string m = failure("cut");
  CHECK(has(m, "run 'cut' step 2"));
  CHECK(has(m, "result does not decode"));
  m = failure("gap");
  CHECK(has(m, "run 'gap' step 1: missing"));
  // A last row gone reads as a step not taken yet (schema 5 keeps no count
  // beside the rows; a commit writes a step's row with all it did).
  auto tail = s.history("tail");
  REQUIRE(tail.ok());
  CHECK(tail->size() == 3);
  m = failure("cmd");
  CHECK(has(m, "run 'cmd' step 0: unknown command id 999"));
  m = failure("state");
  CHECK(has(m, "run 'state' step 3: unknown state 7"));
  auto fine = s.history("ok");
  REQUIRE_MESSAGE(fine.ok(), fine.error().message);
  CHECK(fine->size() == 4);

  raw_sql(db, "UPDATE runs SET state = 'dreaming' WHERE id = 'gap'");
  auto runs = s.runs(false);
  REQUIRE_FALSE(runs.ok());
  CHECK(has(runs.error().message, "run 'gap': unknown state 'dreaming'"));
}

TEST_CASE("journal: a version-1 file gains the journal in place; a newer file is refused") {
  temp_dir d("luad_journal");
  std::string db = (d.path() / "luad.db").string();
  // The store's file as luad wrote it before the journal, with one key.
  raw_sql(db,
          "PRAGMA journal_mode = WAL;"
          "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
          "CREATE TABLE kv (ns BLOB NOT NULL, key BLOB NOT NULL, value BLOB NOT NULL,"
          "  expires REAL, PRIMARY KEY (ns, key)) WITHOUT ROWID;"
          "CREATE INDEX kv_expires ON kv (expires) WHERE expires IS NOT NULL;"
          "INSERT INTO meta VALUES ('schema_version', '1');"
          "INSERT INTO kv VALUES (x'6a74', x'6f6c64', x'c0', NULL);");
  {
    storage s(d.path().string());
    s.start();
    CHECK(raw_text(db, "SELECT value FROM meta WHERE key = 'schema_version'") == "5");
    CHECK(s.namespace_bytes("jt") == 4);  // the old key is still there
    REQUIRE(create(s, "after").ok());
    REQUIRE(append(s, entry("after", 0)).ok());
    CHECK(s.history("after")->size() == 1);
  }
  {
    storage s(d.path().string());  // opening again migrates nothing
    s.start();
    CHECK(s.history("after")->size() == 1);
  }
  raw_sql(db, "UPDATE meta SET value = '6' WHERE key = 'schema_version'");
  storage s(d.path().string());
  std::string why;
  try {
    s.start();
  } catch (const std::exception& e) {
    why = e.what();
  }
  CHECK(has(why, "newer luad (schema version 6; this luad reads up to 5)"));
}

TEST_CASE("journal: appends from many runs and store writes share group commits") {
  for_each_backend([](const opener& open) {
    auto sp = open();
    storage& s = *sp;
    s.start();
    constexpr int runs = 200, steps = 10;
    for (int r = 0; r < runs; ++r) REQUIRE(create(s, "run" + std::to_string(r)).ok());
    auto commits0 = s.commits();
    // Each run appends its next step once the last is durable, as a run would.
    std::atomic<int> done{0}, failed{0};
    std::function<void(int, int)> next = [&](int r, int step) {
      std::string id = "run" + std::to_string(r);
      auto then = [&, r, step](auto result) {
        if (!succeeded(result)) ++failed;
        if (step + 1 < steps)
          next(r, step + 1);
        else
          ++done;
      };
      if (r % 2)
        s.append(entry(id, step), then);
      else
        s.apply_and_append(entry(id, step), store_set(id + "/" + std::to_string(step), value(step)),
                           then);
    };
    for (int r = 0; r < runs; ++r) next(r, 0);
    REQUIRE(eventually([&] { return done.load() == runs; }, std::chrono::seconds(60)));
    CHECK(failed.load() == 0);
    auto h = s.history("run7");
    REQUIRE(h.ok());
    CHECK(h->size() == steps);
    // Every step is its own write; far fewer transactions carried them.
    CHECK(s.committed_writes() >= static_cast<std::uint64_t>(runs * steps));
    CHECK(s.commits() - commits0 < static_cast<std::uint64_t>(runs * steps / 4));
  });
}

TEST_CASE("journal: a version-4 file keeps its runs' steps, now counted from the journal") {
  temp_dir d("luad_journal");
  std::string db = (d.path() / "luad.db").string();
  {
    storage s(d.path().string());
    s.start();
    REQUIRE(create(s, "r").ok());
    REQUIRE(append(s, entry("r", 0)).ok());
    REQUIRE(append(s, entry("r", 1)).ok());
    s.stop();
  }
  // Back to how version 4 kept a run: its count of steps in a column.
  raw_sql(db,
          "ALTER TABLE runs ADD COLUMN steps INTEGER NOT NULL DEFAULT 0;"
          "UPDATE runs SET steps = 2;"
          "UPDATE meta SET value = '4' WHERE key = 'schema_version';");
  storage s(d.path().string());
  s.start();
  CHECK(raw_text(db, "SELECT value FROM meta WHERE key = 'schema_version'") == "5");
  auto runs = s.runs(false);
  REQUIRE(runs.ok());
  REQUIRE(runs->size() == 1);
  CHECK(runs->at(0).steps == 2);
  // The writer learns the next step from the journal's last row.
  status again = append(s, entry("r", 1));
  REQUIRE_FALSE(again.ok());
  CHECK(has(again.error().message, "already done"));
  CHECK_FALSE(append(s, entry("r", 3)).ok());
  CHECK(append(s, entry("r", 2)).ok());
  CHECK(s.history("r")->size() == 3);
}
