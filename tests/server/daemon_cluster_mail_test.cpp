// Sends by name across the nodes of a cluster (docs/cluster.md, "Messages"):
// real `luad serve` daemons on one real PostgreSQL database. A message sent
// at one node to the name a durable run registered on another reaches it
// exactly once, in order, also when the run's node is killed and the run
// moves; a sender who may not send to that owner is refused; a name no run
// holds is not_found.
#include <doctest/doctest.h>

#include <csignal>
#include <memory>
#include <string>
#include <vector>

#include "tests/server/durable_support.hpp"

namespace {

namespace json = boost::json;
using luad::test::eventually;
using luad::test::has;
using luad::test::postgres_server;
using luad_hostile::daemon_process;
using luad_hostile::line_client;
using namespace std::chrono_literals;
using namespace luad::test::durable;  // NOLINT(google-build-using-namespace): shared helpers

// Registers NAME, then receives `n` messages of topic "n" and returns their
// payloads joined by commas, in the order received.
constexpr const char* k_box = R"(
local process = require("process")
local name, n = ...
assert(process.register(name))
local got = {}
for i = 1, n do got[i] = tostring(process.receive("n", 120).payload) end
return table.concat(got, ",")
)";

std::string node_config(const std::string& db, int node, double lease,
                        const std::string& more = "") {
  return daemon_config("", "",
                       "[storage]\nbackend = \"postgres\"\nurl = \"" + db +
                           "\"\n[cluster]\nnode = " + std::to_string(node) +
                           "\nlease = " + std::to_string(lease) + "\n" + more);
}

std::vector<std::unique_ptr<daemon_process>> nodes(const std::string& db, int n, double lease,
                                                   const std::string& more = "") {
  std::vector<std::unique_ptr<daemon_process>> out;
  for (int i = 1; i <= n; ++i) {
    auto d = std::make_unique<daemon_process>(node_config(db, i, lease, more));
    write_file(d->dir() / "scripts" / "box.lua", k_box);
    REQUIRE_MESSAGE(d->started(), d->log_tail());
    out.push_back(std::move(d));
  }
  return out;
}

// A durable run of box.lua at `d`, registered as `name`, waiting for `n`.
std::string start_box(daemon_process& d, const std::string& db, const std::string& name, int n,
                      json::object limits = {}) {
  line_client c(d.socket());
  json::object p{{"script", "box.lua"}, {"durable", true}, {"args", json::array{name, n}}};
  if (!limits.empty()) p["limits"] = std::move(limits);
  json::value r = c.call("spawn", p);
  REQUIRE_MESSAGE(result_of(r).is_object(), text(r));
  REQUIRE_MESSAGE(eventually([&] {
                    return sql(db, "SELECT count(*) FROM luad_names WHERE name = '" + name + "'") ==
                           "1";
                  }),
                  d.log_tail());
  return std::string(result_of(r).at("run").as_string());
}

json::value send(daemon_process& d, const std::string& to, int payload, json::object more = {}) {
  line_client c(d.socket());
  more["to"] = to;
  more["topic"] = "n";
  more["payload"] = payload;
  return c.call("send", more);
}

}  // namespace

TEST_CASE("cluster mail: luad send at one node reaches a durable run's name on another") {
  std::string db = luad::test::shared_postgres().new_database();
  auto ds = nodes(db, 2, 1.5);
  std::string run = start_box(*ds[0], db, "box", 3);
  CHECK(sql(db, "SELECT node FROM luad_names WHERE name = 'box'") == "1");
  // Node 2 has no process named box: the directory sends it to node 1.
  for (int i = 1; i <= 3; ++i) {
    json::value r = send(*ds[1], "box", i);
    REQUIRE_MESSAGE(result_of(r) == true, text(r));
  }
  REQUIRE_MESSAGE(eventually([&] { return all_in_state(*ds[0], 1, "completed"); }, 30s),
                  (ds[0]->log_tail() + ds[1]->log_tail()));
  json::object r = runs_of(*ds[0]).at(run);
  CHECK(text(r.at("detail").at("results")) == "[\"1,2,3\"]");
  // Moved, not copied: no mail is left, and each message is in the inbox once.
  CHECK(sql(db, "SELECT count(*) FROM luad_mail") == "0");
  CHECK(sql(db, "SELECT count(*) FROM luad_inbox") == "3");
  // The run has ended: its name is withdrawn, and a send to it is not_found.
  REQUIRE(eventually([&] { return sql(db, "SELECT count(*) FROM luad_names") == "0"; }));
  json::value gone = send(*ds[1], "box", 4);
  CHECK(has(text(gone), "no process or name 'box'"));
  // Counted on both sides.
  line_client c1(ds[0]->socket()), c2(ds[1]->socket());
  CHECK(result_of(c2.call("stats")).at("cluster").at("mail_sent") == 3);
  CHECK(result_of(c1.call("stats")).at("cluster").at("mail_moved") == 3);
}

TEST_CASE(
    "cluster mail: sends while the run's node is dead reach the run on the node that takes it") {
  std::string db = luad::test::shared_postgres().new_database();
  auto ds = nodes(db, 2, 1.5);
  std::string run = start_box(*ds[0], db, "box", 6);
  for (int i = 1; i <= 3; ++i) REQUIRE(result_of(send(*ds[1], "box", i)) == true);
  // The first three are in the run's inbox (moved by node 1) before it dies.
  REQUIRE(eventually([&] { return sql(db, "SELECT count(*) FROM luad_inbox") == "3"; }));
  ::kill(ds[0]->pid(), SIGKILL);
  REQUIRE(eventually([&] { return !ds[0]->alive(); }));
  // The run has no node now: the next three wait in the database.
  for (int i = 4; i <= 6; ++i) {
    json::value r = send(*ds[1], "box", i);
    REQUIRE_MESSAGE(result_of(r) == true, text(r));
  }
  // Node 2 takes the run once node 1's lease lapses, replays it (the first
  // three from its journal), moves the rest and finishes it: each once, in order.
  REQUIRE_MESSAGE(eventually([&] { return all_in_state(*ds[1], 1, "completed"); }, 30s),
                  ds[1]->log_tail());
  json::object r = runs_of(*ds[1]).at(run);
  CHECK(text(r.at("detail").at("results")) == "[\"1,2,3,4,5,6\"]");
  CHECK(sql(db, "SELECT count(*) FROM luad_mail") == "0");
  CHECK(sql(db, "SELECT count(*) FROM luad_inbox") == "6");
}

TEST_CASE("cluster mail: who may send by name is the owner's rule, on every node") {
  std::string db = luad::test::shared_postgres().new_database();
  auto ds = nodes(db, 2, 1.5);
  start_box(*ds[0], db, "box", 1);
  // Another uid may not send to a name of uid 0's run, here or there.
  for (auto& d : ds) {
    json::value r = send(*d, "box", 1, {{"as_uid", 65534}});
    INFO(text(r));
    CHECK(has(text(r), "-32001"));
    CHECK(has(text(r), "permission_denied"));
  }
  CHECK(sql(db, "SELECT count(*) FROM luad_mail") == "0");
  // A name nobody registered is not_found at once.
  json::value r = send(*ds[1], "nobody", 1);
  CHECK(has(text(r), "no process or name 'nobody'"));
  CHECK(sql(db, "SELECT count(*) FROM luad_inbox") == "0");
}
