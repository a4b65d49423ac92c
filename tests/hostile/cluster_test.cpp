// Attacks on a daemon whose store and journal are on PostgreSQL: run ids
// that look like SQL reach the database only as parameters; a config that
// carries its password is refused before anything connects.
#include <doctest/doctest.h>

#include <string>

#include "tests/server/durable_support.hpp"

namespace {

namespace json = boost::json;
using luad::test::has;
using luad::test::postgres_server;
using luad_hostile::daemon_process;
using luad_hostile::line_client;
using namespace luad::test::durable;  // NOLINT(google-build-using-namespace): shared helpers

}  // namespace

TEST_CASE("hostile cluster: run ids that look like SQL are only ids; the tables stay whole") {
  std::string db = luad::test::shared_postgres().new_database();
  daemon_process d(daemon_config("\"store:t\"", "",
                                 "[storage]\nbackend = \"postgres\"\nurl = \"" + db + "\"\n"));
  REQUIRE_MESSAGE(d.started(), d.log_tail());
  line_client c(d.socket());
  json::value made = c.call("spawn", {{"source", "return 1"}, {"durable", true}, {"wait", true}});
  REQUIRE_MESSAGE(result_of(made).is_object(), text(made));
  for (const char* id : {"x'; DROP TABLE luad_runs; --", "r-1' OR '1'='1", "\\x00\\xff",
                         "' UNION SELECT * FROM luad_nodes --"}) {
    for (const char* method : {"run_history", "run_resume", "run_terminate"}) {
      json::value r = c.call(method, {{"run", id}});
      INFO(method, " ", id, ": ", text(r));
      REQUIRE(r.as_object().contains("error"));
      CHECK(has(text(r), "no durable run"));
    }
  }
  CHECK(postgres_server::scalar(db, "SELECT count(*) FROM luad_runs") == "1");
  CHECK(postgres_server::scalar(db, "SELECT count(*) FROM luad_nodes") == "1");
  CHECK(d.alive());
}

TEST_CASE("hostile cluster: a password in the url is refused before anything connects") {
  daemon_process d(daemon_config(
      "", "",
      "[storage]\nbackend = \"postgres\"\nurl = \"postgresql://u:s3cret@127.0.0.1:1/x\"\n"));
  CHECK_FALSE(d.started());
  std::string log = d.log_tail();
  CHECK(has(log, "holds a password"));
  CHECK_FALSE(has(log, "s3cret"));
}
