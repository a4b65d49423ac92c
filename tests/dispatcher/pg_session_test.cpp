// pg_session against a real PostgreSQL 15 (tests/postgres_server.*): batches
// as pipelines, typed columns, a failing statement, the statement timeout, a
// server that restarts or is not there yet, and close().
#include "dispatcher/pg_session.hpp"

#include <doctest/doctest.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include <future>
#include <string>
#include <thread>

#include "tests/postgres_server.hpp"
#include "tests/support.hpp"

namespace {

using luad::dispatcher::pg_array;
using luad::dispatcher::pg_batch_result;
using luad::dispatcher::pg_param;
using luad::dispatcher::pg_session;
using luad::dispatcher::pg_session_options;
using luad::dispatcher::pg_statement;
using luad::dispatcher::sql;
using luad::runtime::error_kind;
using luad::test::has;

// An io_context on its own thread, as the store's backend will run one.
struct io_thread {
  boost::asio::io_context io;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> guard{io.get_executor()};
  std::thread t{[this] { io.run(); }};
  ~io_thread() {
    guard.reset();
    io.stop();
    t.join();
  }
};

pg_batch_result run(pg_session& s, std::vector<pg_statement> batch) {
  std::promise<pg_batch_result> p;
  auto f = p.get_future();
  s.run(std::move(batch), [&p](pg_batch_result r) { p.set_value(std::move(r)); });
  return f.get();
}

std::shared_ptr<pg_session> connected(io_thread& t, pg_session_options o) {
  auto s = pg_session::make(t.io, std::move(o));
  s->start();
  REQUIRE(luad::test::eventually([&] { return run(*s, {sql("SELECT 1")}).ok(); }));
  return s;
}

}  // namespace

TEST_CASE("pg_session: a batch is one pipeline; columns come back typed, bytes exact") {
  luad::test::postgres_server pg;
  io_thread t;
  auto s = connected(t, {pg.conninfo()});
  CHECK(s->connections() == 1);
  std::string blob("a\0b\xff", 4);
  auto r = run(*s, {sql("CREATE TABLE t (k bytea PRIMARY KEY, n int8, x float8, b bool)"),
                    sql("INSERT INTO t VALUES ($1, $2::int8, $3::float8, true)",
                        {pg_param::bytes(blob), pg_param::integer(-42), pg_param::real(0.1)}),
                    sql("INSERT INTO t VALUES ($1, NULL, NULL, NULL)", {pg_param::bytes("z")}),
                    sql("SELECT k, n, x, b FROM t ORDER BY k"), sql("UPDATE t SET n = 7")});
  REQUIRE_MESSAGE(r.ok(), (r.ok() ? "" : r.error().message));
  REQUIRE(r->size() == 5);
  const auto& rows = (*r)[3];
  REQUIRE(rows.size() == 2);
  CHECK(rows.bytes(0, 0) == blob);
  CHECK(rows.integer(0, 1) == -42);
  CHECK(rows.real(0, 2) == 0.1);
  CHECK(rows.boolean(0, 3));
  CHECK(rows.bytes(1, 0) == "z");
  CHECK(rows.is_null(1, 1));
  CHECK((*r)[4].affected() == 2);
  // Arrays carry many values in one parameter: NULLs, bytes, int8, float8.
  pg_array ks(pg_array::of::bytea), ns(pg_array::of::int8), xs(pg_array::of::float8),
      none(pg_array::of::bytea);
  ks.bytes(blob);
  ks.null();
  ns.integer(-1);
  ns.integer(INT64_MAX);
  xs.real(2.5);
  xs.null();
  auto arrays = run(*s, {sql("SELECT * FROM unnest($1::bytea[], $2::int8[], $3::float8[])",
                             {ks.param(), ns.param(), xs.param()}),
                         sql("SELECT cardinality($1::bytea[])", {none.param()})});
  REQUIRE_MESSAGE(arrays.ok(), (arrays.ok() ? "" : arrays.error().message));
  const auto& un = (*arrays)[0];
  REQUIRE(un.size() == 2);
  CHECK(un.bytes(0, 0) == blob);
  CHECK(un.is_null(1, 0));
  CHECK(un.integer(0, 1) == -1);
  CHECK(un.integer(1, 1) == INT64_MAX);
  CHECK(un.real(0, 2) == 2.5);
  CHECK(un.is_null(1, 2));
  CHECK((*arrays)[1].integer(0, 0) == 0);
  // 10,000 statements in one batch: sent while the server answers.
  std::vector<pg_statement> many;
  for (int i = 0; i < 10000; ++i)
    many.push_back(sql("INSERT INTO t (k) VALUES ($1)", {pg_param::bytes(std::to_string(i))}));
  auto big = run(*s, std::move(many));
  REQUIRE(big.ok());
  CHECK(big->size() == 10000);
  CHECK(run(*s, {sql("SELECT count(*) FROM t")})->front().integer(0, 0) == 10002);
}

TEST_CASE("pg_session: a failing statement fails its whole batch, which changes nothing") {
  luad::test::postgres_server pg;
  io_thread t;
  auto s = connected(t, {pg.conninfo()});
  REQUIRE(run(*s, {sql("CREATE TABLE t (k int8 PRIMARY KEY)")}).ok());
  auto r = run(*s, {sql("INSERT INTO t VALUES (1)"), sql("INSERT INTO t VALUES (1)"),
                    sql("INSERT INTO t VALUES (2)")});
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().kind == error_kind::invalid);
  CHECK(has(r.error().message, "duplicate key"));
  CHECK(has(r.error().message, "SQLSTATE 23505"));
  // The batch was one implicit transaction: the first insert is gone too.
  CHECK(run(*s, {sql("SELECT count(*) FROM t")})->front().integer(0, 0) == 0);
  auto bad = run(*s, {sql("SELEC 1")});
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().kind == error_kind::internal);
  CHECK(run(*s, {sql("SELECT 1")}).ok());  // and the session serves on
}

TEST_CASE("pg_session: the statement timeout ends a slow statement as a retryable timeout") {
  luad::test::postgres_server pg;
  io_thread t;
  pg_session_options o{pg.conninfo()};
  o.statement_timeout = std::chrono::milliseconds(100);
  auto s = connected(t, o);
  auto r = run(*s, {sql("SELECT pg_sleep(5)")});
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().kind == error_kind::timeout);
  CHECK(r.error().retryable);
  CHECK(run(*s, {sql("SELECT 1")}).ok());
}

TEST_CASE("pg_session: a restarted server fails what is in flight as unavailable, then serves") {
  luad::test::postgres_server pg;
  io_thread t;
  pg_session_options o{pg.conninfo()};
  o.retry_min = std::chrono::milliseconds(20);
  auto s = connected(t, o);
  REQUIRE(run(*s, {sql("CREATE TABLE t (k int8)"), sql("INSERT INTO t VALUES (1)")}).ok());
  // In flight when the server goes: a slow statement.
  std::promise<pg_batch_result> p;
  auto f = p.get_future();
  s->run({sql("SELECT pg_sleep(30)")}, [&p](pg_batch_result r) { p.set_value(std::move(r)); });
  auto watcher = connected(t, o);
  REQUIRE(luad::test::eventually([&] {
    auto a = run(*watcher, {sql("SELECT count(*) FROM pg_stat_activity WHERE query = "
                                "'SELECT pg_sleep(30)' AND state = 'active'")});
    return a.ok() && a->front().integer(0, 0) == 1;
  }));
  pg.restart();
  auto lost = f.get();
  REQUIRE_FALSE(lost.ok());
  CHECK(lost.error().kind == error_kind::unavailable);
  CHECK(lost.error().retryable);
  REQUIRE(luad::test::eventually([&] { return run(*s, {sql("SELECT 1")}).ok(); }));
  CHECK(s->connections() == 2);
  CHECK(luad::test::eventually([&] { return run(*watcher, {sql("SELECT 1")}).ok(); }));
  CHECK(run(*s, {sql("SELECT count(*) FROM t")})->front().integer(0, 0) == 1);
}

TEST_CASE("pg_session: no server yet: batches fail as unavailable, naming why, until it starts") {
  luad::test::postgres_server pg;
  pg.stop_immediately();
  io_thread t;
  pg_session_options o{pg.conninfo()};
  o.retry_min = o.retry_max = std::chrono::milliseconds(20);
  auto s = pg_session::make(t.io, o);
  s->start();
  REQUIRE(luad::test::eventually([&] { return !s->last_error().empty(); }));
  auto r = run(*s, {sql("SELECT 1")});
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().kind == error_kind::unavailable);
  CHECK(r.error().retryable);
  CHECK(has(r.error().message, "not connected"));
  CHECK(has(r.error().message, "socket"));  // libpq's reason: no server on the socket
  pg.start();
  CHECK(luad::test::eventually([&] { return run(*s, {sql("SELECT 1")}).ok(); }));
  s->close();
  auto closed = run(*s, {sql("SELECT 1")});
  REQUIRE_FALSE(closed.ok());
  CHECK(closed.error().kind == error_kind::canceled);
}

TEST_CASE("pg_session: a malformed connection string is an error that says so, never retried") {
  CHECK_FALSE(pg_session::conninfo_error("host=/tmp dbname=x").has_value());
  CHECK_FALSE(pg_session::conninfo_error("postgresql://u@h:5/db?sslmode=disable").has_value());
  auto unknown = pg_session::conninfo_error("hots=/tmp");
  REQUIRE(unknown.has_value());
  CHECK(has(*unknown, "invalid connection option \"hots\""));
  io_thread t;
  auto s = pg_session::make(t.io, {"postgresql://[bad"});
  s->start();
  REQUIRE(luad::test::eventually([&] { return !s->last_error().empty(); }));
  CHECK(has(s->last_error(), "bad connection string"));
  CHECK(has(s->last_error(), "postgresql://[bad"));
  auto r = run(*s, {sql("SELECT 1")});
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().kind == error_kind::canceled);  // closed: no attempt is made
}
