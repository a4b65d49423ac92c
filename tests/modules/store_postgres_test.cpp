// The store on PostgreSQL (dispatcher/postgres_store.*) where it differs from
// SQLite: two engines sharing one database (as two daemons would), a server
// restarted under load, expiry, and what start refuses. The cases both
// backends share are in store_test.cpp and store_quota_test.cpp.
#include <doctest/doctest.h>
#include <libpq-fe.h>

#include <future>
#include <string>

#include "dispatcher/postgres_store.hpp"
#include "tests/modules/store_backends.hpp"
#include "tests/support.hpp"

using luad::runtime::exit_reason;
using luad::runtime::value;
using luad::server::engine;
using luad::server::engine_options;
using luad::test::eventually;
using luad::test::has;
using luad::test::run_lua;

namespace {

engine_options on(const std::string& conninfo) {
  engine_options o;
  o.scheduler = luad::runtime::scheduler_options::with_workers(2);
  o.postgres.conninfo = conninfo;
  return o;
}

luad::runtime::spawn_options demo_store_with(std::vector<value> args = {}) {
  luad::runtime::spawn_options o;
  o.ctx.permissions = {"store:demo"};
  o.args = std::move(args);
  return o;
}

std::vector<value> run_demo(engine& eng, const std::string& source, std::vector<value> args = {}) {
  auto e = run_lua(source, demo_store_with(std::move(args)), &eng);
  REQUIRE_MESSAGE(e.reason == exit_reason::normal, e.err.message);
  return e.results;
}

std::string scalar(const std::string& conninfo, const std::string& sql) {
  return luad::test::postgres_server::scalar(conninfo, sql);
}

// Increments "n" `count` times from each of `procs` processes
// (tests/lua/children/store_incr.lua); returns the increments acknowledged.
const char* k_incrementers = R"(
  local process = require("process")
  local procs, count = ...
  for _ = 1, procs do
    process.spawn("tests/lua/children/store_incr.lua", process.self(), count)
  end
  local total = 0
  for _ = 1, procs do total = total + process.receive("acked", 120).payload end
  return total)";

}  // namespace

TEST_CASE("store on postgres: two engines share one store; increments from both are all counted") {
  std::string db = luad::test::shared_postgres().new_database();
  engine a(on(db)), b(on(db));
  std::promise<std::int64_t> from_b;
  std::thread t([&] {
    from_b.set_value(
        *run_demo(b, k_incrementers, {value(20), value(25)}).at(0).get<std::int64_t>());
  });
  auto from_a = run_demo(a, k_incrementers, {value(20), value(25)});
  t.join();
  std::int64_t total = *from_a.at(0).get<std::int64_t>() + from_b.get_future().get();
  CHECK(total == 2 * 20 * 25);
  // Each engine reads the other's writes: one value, all increments in it.
  CHECK(run_demo(a, "return require('store').get('n')").at(0) == value(total));
  CHECK(run_demo(b, "return require('store').get('n')").at(0) == value(total));
  // cas from absent is won by exactly one of the two.
  auto claim = "return require('store').cas('owner', nil, ...)";
  bool won_a = run_demo(a, claim, {value("a")}).at(0) == value(true);
  bool won_b = run_demo(b, claim, {value("b")}).at(0) == value(true);
  CHECK(won_a != won_b);
}

TEST_CASE("store on postgres: keys and values that look like SQL are only bytes") {
  // Keys, values and namespaces travel as binary parameters, never in the
  // SQL text: an attacker's key is stored and read back as it was.
  std::string db = luad::test::shared_postgres().new_database();
  engine eng(on(db));
  auto r = run_demo(eng, R"(
    local store = require("store")
    local evil = "x'); DROP TABLE luad_kv; --"
    assert(store.set(evil, "\0'; DELETE FROM luad_ns_usage; --"))
    assert(store.set("plain", 1))
    local items = store.list("x'")
    return store.get(evil), #items, store.get("plain"))");
  CHECK(r.at(0) == value(std::string("\0'; DELETE FROM luad_ns_usage; --", 33)));
  CHECK(r.at(1) == value(1));
  CHECK(r.at(2) == value(1));
  CHECK(scalar(db, "SELECT count(*) FROM luad_kv") == "2");
}

TEST_CASE("store on postgres: a quota holds across engines, the totals kept in the database") {
  std::string db = luad::test::shared_postgres().new_database();
  engine a(on(db)), b(on(db));
  luad::dispatcher::store_quotas q;
  q.default_bytes = 10000;
  a.storage().set_quotas(q);
  b.storage().set_quotas(q);
  run_demo(a, "assert(require('store').set('x', ('a'):rep(6000)))");
  auto r = run_demo(b, R"(
    local ok, err = require('store').set('y', ('b'):rep(6000))
    return ok, err and err.kind)");
  CHECK(r.at(0).is_nil());
  CHECK(r.at(1) == value("limit"));
  CHECK(std::stoll(scalar(db, "SELECT bytes FROM luad_ns_usage")) > 6000);
  // Deleting on one engine gives the room back to the other.
  run_demo(a, "assert(require('store').delete('x'))");
  run_demo(b, "assert(require('store').set('y', ('b'):rep(6000)))");
}

TEST_CASE("store on postgres: expired keys are invisible, then deleted, their bytes given back") {
  std::string db = luad::test::shared_postgres().new_database();
  engine eng(on(db));
  run_demo(eng, R"(
    local store = require("store")
    assert(store.set("kept", 1))
    assert(store.set("brief", ("x"):rep(500), {ttl = 0.05}))
    require("time").sleep(0.1)
    assert(store.get("brief") == nil and #store.list() == 1))");
  CHECK(eventually([&] { return scalar(db, "SELECT count(*) FROM luad_kv") == "1"; },
                   std::chrono::seconds(5)));
  CHECK(std::stoll(scalar(db, "SELECT bytes FROM luad_ns_usage")) < 100);
}

TEST_CASE("store on postgres: a restart under load: acked increments survive, none doubled") {
  auto& pg = luad::test::shared_postgres();
  std::string db = pg.new_database();
  engine eng(on(db));
  auto fut = luad::test::spawn_lua(eng, k_incrementers, demo_store_with({value(10), value(200)}));
  REQUIRE(eventually([&] {
    std::string n = scalar(db, "SELECT count(*) FROM luad_kv");
    return n == "1";
  }));
  pg.restart();
  auto e = luad::test::wait_exit(fut, std::chrono::seconds(120));
  REQUIRE_MESSAGE(e.reason == exit_reason::normal, e.err.message);
  std::int64_t acked = *e.results.at(0).get<std::int64_t>();
  CHECK(acked == 10 * 200);
  // A batch whose COMMIT was sent when the connection went is settled by
  // asking the server whether it committed: no increment is counted twice.
  value n;
  REQUIRE(eventually([&] {  // (the reader's connection may still be coming back)
    n = run_demo(eng, "return require('store').get('n')").at(0);
    return n.get<std::int64_t>() != nullptr;
  }));
  CHECK(*n.get<std::int64_t>() == acked);
}

TEST_CASE(
    "store on postgres: a COMMIT whose answer is lost is settled by the server, not retried") {
  std::string db = luad::test::shared_postgres().new_database();
  engine eng(on(db));
  eng.storage().inject(luad::dispatcher::storage::fault::commit_answer_lost);
  // The first incr's COMMIT runs and its answer is lost: the store asks the
  // server, finds the transaction committed, and answers 1 (the script sees
  // no error and does not retry).
  auto r = run_demo(eng, R"(
    local store = require("store")
    local v, err = store.incr("n")
    return v, err and tostring(err) or "")");
  CHECK(r.at(0) == value(std::int64_t{1}));
  CHECK(r.at(1) == value(""));
  CHECK(scalar(db, "SELECT count(*) FROM luad_kv") == "1");
  CHECK(run_demo(eng, "return require('store').incr('n')").at(0) == value(std::int64_t{2}));
}

TEST_CASE(
    "store on postgres: start refuses a newer schema or no server, never showing the password") {
  auto& pg = luad::test::shared_postgres();
  std::string db = pg.new_database();
  { engine eng(on(db)); }
  PGconn* c = PQconnectdb(db.c_str());
  PQclear(PQexec(c, "UPDATE luad_meta SET value = '99' WHERE key = 'schema_version'"));
  PQfinish(c);
  try {
    engine eng(on(db + " password=hunter2"));
    FAIL("a newer schema was accepted");
  } catch (const std::exception& e) {
    CHECK(has(e.what(), "newer luad (schema 99"));
    CHECK(has(e.what(), "dbname=luad_test_"));
    CHECK_FALSE(has(e.what(), "hunter2"));
  }
  luad::dispatcher::postgres_options o{"host=/nonexistent dbname=x"};
  o.start_timeout = std::chrono::milliseconds(300);
  luad::dispatcher::postgres_store nowhere(o);
  try {
    nowhere.start();
    FAIL("no server, yet it started");
  } catch (const std::exception& e) {
    CHECK(has(e.what(), "store: cannot use postgres: "));
    CHECK(has(e.what(), "host=/nonexistent"));
    CHECK(has(e.what(), "not connected"));
  }
  CHECK(luad::dispatcher::postgres_store::redacted("postgresql://u:pw@h/db") ==
        "postgres: user=u dbname=db host=h");
}
