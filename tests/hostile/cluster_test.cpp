// Attacks on a daemon whose store and journal are on PostgreSQL: run ids
// that look like SQL reach the database only as parameters; a config that
// carries its password is refused before anything connects; a flood of
// sends from another node is bounded by [cluster] max_mail.
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

TEST_CASE("hostile cluster: a flood of sends from another node waits in the database, bounded") {
  // A run that never receives, with an inbox of 3; node 2 sends to its name
  // until refused. The inbox takes 3, [cluster] max_mail = 5 more wait as
  // mail; then each send fails with limit, and neither daemon holds them.
  std::string db = luad::test::shared_postgres().new_database();
  auto cfg = [&](int node) {
    return daemon_config("", "",
                         "[storage]\nbackend = \"postgres\"\nurl = \"" + db +
                             "\"\n[cluster]\nnode = " + std::to_string(node) + "\nmax_mail = 5\n");
  };
  daemon_process a(cfg(1)), b(cfg(2));
  REQUIRE_MESSAGE(a.started(), a.log_tail());
  REQUIRE_MESSAGE(b.started(), b.log_tail());
  line_client ca(a.socket()), cb(b.socket());
  json::value made = ca.call(
      "spawn",
      {{"source", "require('process').register('sink'); require('process').receive('never', 600)"},
       {"durable", true},
       {"limits", {{"mailbox", 3}}}});
  REQUIRE_MESSAGE(result_of(made).is_object(), text(made));
  REQUIRE(luad::test::eventually(
      [&] { return postgres_server::scalar(db, "SELECT count(*) FROM luad_names") == "1"; }));
  int accepted = 0;
  json::value refused;
  for (int i = 0; i < 40; ++i) {
    json::value r = cb.call("send", {{"to", "sink"}, {"topic", "x"}, {"payload", i}});
    if (result_of(r) == true) {
      ++accepted;
      continue;
    }
    refused = r;
    // (Mail moved meanwhile frees room: try until the inbox is full too.)
    if (postgres_server::scalar(db, "SELECT count(*) FROM luad_inbox") == "3") break;
  }
  INFO(text(refused));
  CHECK(has(text(refused), "\"kind\":\"limit\""));
  CHECK(has(text(refused), "is full (5 messages"));
  CHECK(accepted <= 3 + 5);
  CHECK(postgres_server::scalar(db, "SELECT count(*) FROM luad_inbox") == "3");
  CHECK(postgres_server::scalar(db, "SELECT count(*) FROM luad_mail") == "5");
  CHECK(a.alive());
  CHECK(b.alive());
}
