// The test PostgreSQL server itself (tests/postgres_server.*): it starts,
// answers over its socket, keeps committed data across a restart and a crash.
#include "tests/postgres_server.hpp"

#include <doctest/doctest.h>
#include <libpq-fe.h>

#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>

namespace {

using conn_ptr = std::unique_ptr<PGconn, decltype(&PQfinish)>;
using result_ptr = std::unique_ptr<PGresult, decltype(&PQclear)>;

conn_ptr connect(const luad::test::postgres_server& pg) {
  conn_ptr c(PQconnectdb(pg.conninfo().c_str()), &PQfinish);
  REQUIRE_MESSAGE(PQstatus(c.get()) == CONNECTION_OK, PQerrorMessage(c.get()));
  return c;
}

// The first field of the first row of `sql`'s result ("" when there is none).
std::string scalar(PGconn* c, const char* sql) {
  result_ptr r(PQexec(c, sql), &PQclear);
  ExecStatusType st = PQresultStatus(r.get());
  REQUIRE_MESSAGE((st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK), PQerrorMessage(c));
  return st == PGRES_TUPLES_OK && PQntuples(r.get()) > 0 ? PQgetvalue(r.get(), 0, 0) : "";
}

}  // namespace

TEST_CASE(
    "test postgres: a fresh PostgreSQL 15 answers, and keeps commits across restart and crash") {
  luad::test::postgres_server pg;
  {
    conn_ptr c = connect(pg);
    CHECK(scalar(c.get(), "SHOW server_version_num").rfind("15", 0) == 0);
    scalar(c.get(), "CREATE TABLE kv (k text PRIMARY KEY, v bigint)");
    scalar(c.get(), "INSERT INTO kv VALUES ('a', 41)");
    CHECK(scalar(c.get(), "UPDATE kv SET v = v + 1 WHERE k = 'a' RETURNING v") == "42");
  }
  pg.restart();
  {
    conn_ptr c = connect(pg);
    CHECK(scalar(c.get(), "SELECT v FROM kv WHERE k = 'a'") == "42");
    scalar(c.get(), "INSERT INTO kv VALUES ('b', 7)");
  }
  pg.stop_immediately();  // no checkpoint: the WAL brings 'b' back
  {
    conn_ptr gone(PQconnectdb(pg.conninfo().c_str()), &PQfinish);
    CHECK(PQstatus(gone.get()) == CONNECTION_BAD);
  }
  pg.start();
  conn_ptr c = connect(pg);
  CHECK(scalar(c.get(), "SELECT sum(v) FROM kv") == "49");
}

TEST_CASE("test postgres: servers are copies of one template; a template cut short is made again") {
  namespace fs = std::filesystem;
  fs::path root =
      fs::temp_directory_path() / ("luad-pg15-template-v1-" + std::to_string(::geteuid()));
  { luad::test::postgres_server first; }  // the template exists from here on
  REQUIRE(fs::exists(root / "complete"));
  // What an initdb killed halfway leaves: files, no `complete`.
  fs::remove(root / "complete");
  fs::remove(root / "data" / "PG_VERSION");
  luad::test::postgres_server pg;
  CHECK(fs::exists(root / "complete"));
  CHECK(fs::exists(root / "data" / "PG_VERSION"));
  // A table made in one copy is not in the template nor in the next copy.
  scalar(connect(pg).get(), "CREATE TABLE mine (k int)");
  luad::test::postgres_server other;
  CHECK(scalar(connect(other).get(), "SELECT count(*) FROM pg_tables WHERE tablename = 'mine'") ==
        "0");
}
