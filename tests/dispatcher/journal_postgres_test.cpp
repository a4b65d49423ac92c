// The journal of durable runs on a real PostgreSQL (dispatcher/postgres_journal.*):
// a store operation and its entry land together or not at all, corrupt rows
// are named, two daemons appending to one run record each step once, fused
// reads see the writes before them, and a schema-1 database gains the journal.
#include "tests/dispatcher/journal_support.hpp"

#include <thread>

namespace {

using namespace luad::test::journal_support;
using luad::test::postgres_server;

std::unique_ptr<storage> on(const std::string& db) { return on_postgres(db); }

}  // namespace

TEST_CASE("journal on postgres: a store operation and its entry land together, or neither") {
  std::string db = luad::test::shared_postgres().new_database();
  auto sp = on(db);
  storage& s = *sp;
  s.start();
  REQUIRE(create(s, "r").ok());
  journal_entry e = entry("r", 0);
  e.command = command_id::store_op;
  outcome o = apply(s, e, store_set("k", value("v")));
  REQUIRE_FALSE(o.err);
  CHECK(o.val == value(true));
  // The operation's own error is its journaled result.
  e.step = 1;
  outcome bad = apply(s, e, value::map{{"op", "incr"}, {"ns", "jt"}, {"key", "k"}});
  REQUIRE(bad.err);
  CHECK(bad.err->kind == error_kind::invalid);
  auto h = s.history("r");
  REQUIRE_MESSAGE(h.ok(), h.error().message);
  REQUIRE(h->size() == 2);
  CHECK((*h)[1].failed);
  CHECK(has((*h)[1].result, "not an integer"));

  // The store's write is sent, then its entry fails (a trigger an outsider
  // left): the transaction rolls back whole.
  postgres_server::scalar(db,
                          "CREATE FUNCTION boom() RETURNS trigger LANGUAGE plpgsql AS"
                          " $$BEGIN RAISE EXCEPTION 'boom'; END$$;"
                          "CREATE TRIGGER boom BEFORE INSERT ON luad_journal FOR EACH ROW"
                          " WHEN (NEW.step = 2) EXECUTE FUNCTION boom()");
  e.step = 2;
  o = apply(s, e, store_set("small", value(1)));
  REQUIRE(o.err);
  CHECK(o.err->kind == error_kind::unavailable);
  CHECK(has(o.err->message, "boom"));
  CHECK(postgres_server::scalar(db, "SELECT count(*) FROM luad_kv WHERE key = 'small'") == "0");
  postgres_server::scalar(db, "DROP TRIGGER boom ON luad_journal");

  // A read-only database and a full disk: neither lands either.
  s.inject(storage::fault::read_only);
  outcome ro = apply(s, entry("r", 2), store_set("small", value(1)));
  REQUIRE(ro.err);
  CHECK(ro.err->kind == error_kind::unavailable);
  s.inject(storage::fault::disk_full);
  status plain = append(s, entry("r", 2));
  REQUIRE_FALSE(plain.ok());
  CHECK(plain.error().kind == error_kind::unavailable);
  CHECK(postgres_server::scalar(db, "SELECT count(*) FROM luad_kv WHERE key = 'small'") == "0");
  CHECK(postgres_server::scalar(db, "SELECT steps FROM luad_runs WHERE id = 'r'") == "2");
  s.inject(storage::fault::none);
  o = apply(s, e, store_set("small", value(1)));
  REQUIRE_FALSE(o.err);
  CHECK(postgres_server::scalar(db, "SELECT count(*) FROM luad_kv WHERE key = 'small'") == "1");
  CHECK(s.history("r")->size() == 3);
}

TEST_CASE("journal on postgres: fused reads see the writes queued before them") {
  std::string db = luad::test::shared_postgres().new_database();
  auto sp = on(db);
  storage& s = *sp;
  s.start();
  REQUIRE(create(s, "r").ok());
  REQUIRE(create(s, "first").ok());
  // Queued together behind a batch in flight, so that they share the next
  // ones: a write, a fused get, a fused list, each seeing what came before it.
  luad::test::journal_support::answer<status> first;
  luad::test::journal_support::answer<outcome> set, got, listed;
  s.append(entry("first", 0), first.callback());
  journal_entry e = entry("r", 0);
  e.command = command_id::store_op;
  s.apply_and_append(e, store_set("a", value("x")), set.callback());
  e.step = 1;
  s.apply_and_append(e, value::map{{"op", "get"}, {"ns", "jt"}, {"key", "a"}}, got.callback());
  e.step = 2;
  s.apply_and_append(e, value::map{{"op", "list"}, {"ns", "jt"}, {"prefix", ""}},
                     listed.callback());
  REQUIRE(first.take().ok());
  REQUIRE_FALSE(set.take().err);
  outcome g = got.take();
  REQUIRE_FALSE(g.err);
  CHECK(g.val == value(encoded(value("x"))));
  outcome l = listed.take();
  REQUIRE_FALSE(l.err);
  const value* items = l.val.find("items");
  REQUIRE(items);
  REQUIRE(items->get<value::array>());
  CHECK(items->get<value::array>()->size() == 1);
  auto h = s.history("r");
  REQUIRE(h.ok());
  REQUIRE(h->size() == 3);
  CHECK((*h)[1].result == encoded(g.val));
  CHECK((*h)[2].result == encoded(l.val));
}

TEST_CASE("journal on postgres: a corrupt row fails history with invalid naming the run and step") {
  std::string db = luad::test::shared_postgres().new_database();
  auto sp = on(db);
  storage& s = *sp;
  s.start();
  for (const char* run : {"ok", "cut", "gap", "cmd", "state"}) {
    REQUIRE(create(s, run).ok());
    for (int i = 0; i < 4; ++i) REQUIRE(append(s, entry(run, i, value::map{{"n", i}})).ok());
  }
  postgres_server::scalar(db,
                          "UPDATE luad_journal SET result = substr(result, 1, length(result) - 1)"
                          " WHERE run = 'cut' AND step = 2;"
                          "DELETE FROM luad_journal WHERE run = 'gap' AND step = 1;"
                          "UPDATE luad_journal SET command = 999 WHERE run = 'cmd' AND step = 0;"
                          "UPDATE luad_journal SET state = 7 WHERE run = 'state' AND step = 3;");
  auto failure = [&](const char* run) { return history_error(s, run); };
  CHECK(has(failure("cut"), "run 'cut' step 2: the result does not decode"));
  CHECK(has(failure("gap"), "run 'gap' step 1: missing"));
  CHECK(has(failure("cmd"), "run 'cmd' step 0: unknown command id 999"));
  CHECK(has(failure("state"), "run 'state' step 3: unknown state 7"));
  CHECK(s.history("ok")->size() == 4);
  postgres_server::scalar(db, "UPDATE luad_runs SET state = 'dreaming' WHERE id = 'gap'");
  auto runs = s.runs(false);
  REQUIRE_FALSE(runs.ok());
  CHECK(has(runs.error().message, "run 'gap': unknown state 'dreaming'"));
  // A write to that run keeps the state it cannot read: it is not guessed.
  REQUIRE(append(s, entry("gap", 4)).ok());
  CHECK(postgres_server::scalar(db, "SELECT state FROM luad_runs WHERE id = 'gap'") == "dreaming");
}

TEST_CASE("journal on postgres: two daemons appending to one run record each step once") {
  std::string db = luad::test::shared_postgres().new_database();
  auto a = on(db), b = on(db);
  a->start();
  b->start();
  constexpr int runs = 8, steps = 25;
  for (int r = 0; r < runs; ++r) REQUIRE(create(*a, "run" + std::to_string(r)).ok());
  // Both daemons race for every step of every run, each believing it owns
  // the run: for each step exactly one append may win.
  std::atomic<int> won_a{0}, won_b{0}, refused{0}, other{0};
  auto race = [&](storage& s, std::atomic<int>& won, const char* who) {
    for (int step = 0; step < steps; ++step) {
      for (int r = 0; r < runs; ++r) {
        status st = append(s, entry("run" + std::to_string(r), step, value(who)));
        if (st.ok())
          ++won;
        else if (st.error().kind == error_kind::invalid && has(st.error().message, "already done"))
          ++refused;
        else
          ++other;
      }
    }
  };
  std::thread ta([&] { race(*a, won_a, "a"); });
  std::thread tb([&] { race(*b, won_b, "b"); });
  ta.join();
  tb.join();
  CHECK(other.load() == 0);
  CHECK(won_a.load() + won_b.load() == runs * steps);
  CHECK(refused.load() == runs * steps);
  for (int r = 0; r < runs; ++r) {
    auto h = a->history("run" + std::to_string(r));
    REQUIRE(h.ok());
    CHECK(h->size() == steps);
  }
  CHECK(postgres_server::scalar(db, "SELECT sum(steps) FROM luad_runs") ==
        std::to_string(runs * steps));
}

TEST_CASE("journal on postgres: a schema-1 database gains the journal, keeping its keys") {
  std::string db = luad::test::shared_postgres().new_database();
  // The store as schema 1 made it, with one key.
  postgres_server::scalar(
      db,
      "CREATE TABLE luad_meta (key text PRIMARY KEY, value text NOT NULL);"
      "CREATE TABLE luad_kv (ns bytea NOT NULL, key bytea NOT NULL, value bytea NOT NULL,"
      " expires float8, PRIMARY KEY (ns, key));"
      "CREATE TABLE luad_ns_usage (ns bytea PRIMARY KEY, bytes int8 NOT NULL);"
      "INSERT INTO luad_meta VALUES ('schema_version', '1');"
      "INSERT INTO luad_kv VALUES ('jt', 'old', '\\xc0', NULL);"
      "INSERT INTO luad_ns_usage VALUES ('jt', 4)");
  auto sp = on(db);
  storage& s = *sp;
  s.start();
  CHECK(postgres_server::scalar(db, "SELECT value FROM luad_meta WHERE key = 'schema_version'") ==
        std::to_string(postgres_store::schema_version));
  CHECK(s.namespace_bytes("jt") == 4);
  REQUIRE(create(s, "after").ok());
  REQUIRE(append(s, entry("after", 0)).ok());
  CHECK(s.history("after")->size() == 1);
}
