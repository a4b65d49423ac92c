// Attacks on a daemon whose store and journal are on PostgreSQL: run ids
// that look like SQL reach the database only as parameters; a config that
// carries its password is refused before anything connects; a flood of
// sends from another node is bounded by [cluster] max_mail; a run cannot
// take over another owner's name in the directory; a message the run
// could never take is refused at the sender.
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
    // Mail moved into the inbox frees room, until the inbox is full: from
    // then on (the run never receives) nothing moves, so only a refusal that
    // came after it is final. (A refusal before it was followed by a move.)
    bool inbox_full = postgres_server::scalar(db, "SELECT count(*) FROM luad_inbox") == "3";
    json::value r = cb.call("send", {{"to", "sink"}, {"topic", "x"}, {"payload", i}});
    if (result_of(r) == true) {
      ++accepted;
      continue;
    }
    refused = r;
    if (inbox_full) break;
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

TEST_CASE("hostile cluster: a run cannot take over another owner's name in the directory") {
  // uid 0's durable run on node 1 holds "billing"; another uid's durable
  // run on node 2 registers "billing" there too (node 2 has no local
  // holder). The directory keeps uid 0's run: a send from elsewhere still
  // reaches it, never the squatter.
  std::string db = luad::test::shared_postgres().new_database();
  auto cfg = [&](int node) {
    return daemon_config("", "",
                         "[storage]\nbackend = \"postgres\"\nurl = \"" + db +
                             "\"\n[cluster]\nnode = " + std::to_string(node) + "\n");
  };
  daemon_process a(cfg(1)), b(cfg(2));
  REQUIRE_MESSAGE(a.started(), a.log_tail());
  REQUIRE_MESSAGE(b.started(), b.log_tail());
  line_client ca(a.socket()), cb(b.socket());
  const char* holder =
      "require('process').register('billing'); return require('process').receive('n', 60).payload";
  json::value made = ca.call("spawn", {{"source", holder}, {"durable", true}});
  REQUIRE_MESSAGE(result_of(made).is_object(), text(made));
  std::string run(result_of(made).at("run").as_string());
  auto row = [&] {
    return postgres_server::scalar(db,
                                   "SELECT convert_from(owner, 'UTF8') || ' ' ||"
                                   " convert_from(run, 'UTF8') FROM luad_names");
  };
  REQUIRE(luad::test::eventually([&] { return row() == "uid:0 " + run; }));
  json::value squat = cb.call("spawn", {{"source", holder}, {"durable", true}, {"as_uid", 65534}});
  REQUIRE_MESSAGE(result_of(squat).is_object(), text(squat));
  REQUIRE(luad::test::eventually([&] { return has(b.log_tail(), "held by another owner"); }));
  CHECK(row() == "uid:0 " + run);
  // A third daemon (no local holder) sends to the name: uid 0's run gets it.
  daemon_process c(cfg(3));
  REQUIRE_MESSAGE(c.started(), c.log_tail());
  line_client cc(c.socket());
  REQUIRE(result_of(cc.call("send", {{"to", "billing"}, {"topic", "n"}, {"payload", 7}})) == true);
  REQUIRE(luad::test::eventually([&] {
    auto runs = runs_of(a);
    return runs.count(run) && runs.at(run).at("state") == "completed";
  }));
  CHECK(text(runs_of(a).at(run).at("detail").at("results")) == "[7]");
}

TEST_CASE("hostile cluster: a message larger than the run's inbox takes is refused at the sender") {
  std::string db = luad::test::shared_postgres().new_database();
  auto cfg = [&](int node) {
    return daemon_config("", "",
                         "[storage]\nbackend = \"postgres\"\nurl = \"" + db +
                             "\"\n[cluster]\nnode = " + std::to_string(node) + "\n");
  };
  daemon_process a(cfg(1)), b(cfg(2));
  REQUIRE_MESSAGE(a.started(), a.log_tail());
  REQUIRE_MESSAGE(b.started(), b.log_tail());
  line_client ca(a.socket()), cb(b.socket());
  json::value made = ca.call("spawn", {{"source",
                                        "require('process').register('small');"
                                        " return require('process').receive('n', 60).payload"},
                                       {"durable", true},
                                       {"limits", {{"message_bytes", 1000}}}});
  REQUIRE_MESSAGE(result_of(made).is_object(), text(made));
  REQUIRE(luad::test::eventually(
      [&] { return postgres_server::scalar(db, "SELECT count(*) FROM luad_names") == "1"; }));
  json::value big =
      cb.call("send", {{"to", "small"}, {"topic", "n"}, {"payload", std::string(5000, 'x')}});
  INFO(text(big));
  CHECK(has(text(big), "\"kind\":\"limit\""));
  CHECK(has(text(big), "takes (1000 bytes)"));
  CHECK(postgres_server::scalar(db, "SELECT count(*) FROM luad_mail") == "0");
  // One that fits still goes.
  CHECK(result_of(cb.call("send", {{"to", "small"}, {"topic", "n"}, {"payload", "ok"}})) == true);
}
