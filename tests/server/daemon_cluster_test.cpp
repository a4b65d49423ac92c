// Several real `luad serve` daemons on one real PostgreSQL database
// (docs/cluster.md): durable runs submitted to one node finish exactly once,
// spread over the nodes; a node killed with SIGKILL has its runs finished by
// the others; a node paused past its lease is fenced when it wakes; a node id
// is held by one daemon at a time.
#include <doctest/doctest.h>

#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "server/metrics.hpp"
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

// Each run: `rounds` times a store increment and a short sleep; returns its
// counter, which ends at `rounds` when no increment was doubled or lost.
constexpr const char* k_work = R"(
local store, time = require("store"), require("time")
local id, rounds, pause = ...
for _ = 1, rounds do
  store.incr("c" .. id, 1)
  time.sleep(pause)
end
return store.get("c" .. id)
)";

std::string node_config(const std::string& db, int node, double lease, int max_runs) {
  return daemon_config("\"store:t\"", "",
                       "[storage]\nbackend = \"postgres\"\nurl = \"" + db +
                           "\"\n[cluster]\nnode = " + std::to_string(node) +
                           "\nlease = " + std::to_string(lease) +
                           "\nmax_runs = " + std::to_string(max_runs) + "\n");
}

// `n` daemons, nodes 1..n, on database `db`, each with the work script.
std::vector<std::unique_ptr<daemon_process>> nodes(const std::string& db, int n, double lease,
                                                   int max_runs) {
  std::vector<std::unique_ptr<daemon_process>> out;
  for (int i = 1; i <= n; ++i) {
    auto d = std::make_unique<daemon_process>(node_config(db, i, lease, max_runs));
    write_file(d->dir() / "scripts" / "work.lua", k_work);
    REQUIRE_MESSAGE(d->started(), d->log_tail());
    out.push_back(std::move(d));
  }
  return out;
}

// Submits run `id` of the work script at `d`; returns the reply's result.
json::value submit(daemon_process& d, int id, int rounds, double pause) {
  line_client c(d.socket());
  json::value r =
      c.call("spawn",
             {{"script", "work.lua"}, {"durable", true}, {"args", json::array{id, rounds, pause}}});
  REQUIRE_MESSAGE(result_of(r).is_object(), text(r));
  return result_of(r);
}

// Every run completed with `rounds` as its result and its steps each recorded
// once, each counter at `rounds`.
void check_exactly_once(daemon_process& d, int runs, int rounds) {
  auto all = runs_of(d);
  REQUIRE(all.size() == static_cast<std::size_t>(runs));
  for (const auto& [id, r] : all) {
    INFO(id, ": ", text(r));
    CHECK(r.at("state") == "completed");
    const json::value* detail = r.if_contains("detail");
    REQUIRE(detail);
    CHECK(text(detail->at("results")) == "[" + std::to_string(rounds) + "]");
    // An increment and a sleep a round, then the get: no step recorded twice.
    CHECK(r.at("steps").as_int64() == 2 * rounds + 1);
  }
  for (int i = 0; i < runs; ++i)
    CHECK(run_once(d, "return require('store').get('c" + std::to_string(i) + "')") == rounds);
}

}  // namespace

TEST_CASE("cluster: durable runs submitted to one node finish exactly once, spread over nodes") {
  std::string db = luad::test::shared_postgres().new_database();
  auto ds = nodes(db, 3, 2, 2);  // each node takes at most 2 runs
  int local = 0, queued = 0;
  for (int i = 0; i < 6; ++i) {
    json::value r = submit(*ds[0], i, 3, 0.3);
    if (r.as_object().contains("queued"))
      ++queued;
    else
      ++local;
  }
  CHECK(local == 2);
  CHECK(queued == 4);
  REQUIRE_MESSAGE(eventually([&] { return all_in_state(*ds[0], 6, "completed"); }, 60s),
                  (ds[0]->log_tail() + ds[1]->log_tail() + ds[2]->log_tail()));
  check_exactly_once(*ds[0], 6, 3);
  // Every node ran two: the one it was submitted to, and the two that claimed.
  CHECK(sql(db, "SELECT count(DISTINCT node) FROM luad_runs") == "3");
  CHECK(sql(db, "SELECT max(c) FROM (SELECT count(*) AS c FROM luad_runs GROUP BY node) n") == "2");
  // luad cluster's source: three live nodes.
  line_client c(ds[1]->socket());
  json::value st = result_of(c.call("cluster"));
  REQUIRE_MESSAGE(st.is_object(), text(st));
  CHECK(st.at("node") == 2);
  REQUIRE(st.at("nodes").as_array().size() == 3);
  for (const auto& n : st.at("nodes").as_array()) CHECK(n.at("live") == true);
  // Per-node figures: node 2 claimed the two runs it ran, and every one is
  // a Prometheus series.
  json::value stats = result_of(c.call("stats"));
  REQUIRE(stats.is_object());
  REQUIRE_MESSAGE(stats.as_object().contains("cluster"), text(stats));
  const json::value& mine = stats.at("cluster");
  CHECK(mine.at("node") == 2);
  CHECK(mine.at("claimed") == 2);
  CHECK(mine.at("lost") == 0);
  CHECK(mine.at("lease_seconds_left").to_number<double>() > 0);
  CHECK(luad::server::unexposed(stats.as_object()).empty());
  CHECK(has(luad::server::prometheus_text(stats.as_object()), "luad_cluster_claimed_runs_total 2"));
}

TEST_CASE("cluster: a node killed with SIGKILL mid-run has its runs finished by the others") {
  std::string db = luad::test::shared_postgres().new_database();
  auto ds = nodes(db, 3, 1.5, 0);
  constexpr int k_runs = 4, k_rounds = 8;
  for (int i = 0; i < k_runs; ++i)
    CHECK_FALSE(submit(*ds[0], i, k_rounds, 0.25).as_object().contains("queued"));
  REQUIRE(eventually(
      [&] { return std::stoi("0" + sql(db, "SELECT min(steps) FROM luad_runs")) >= 4; }));
  ::kill(ds[0]->pid(), SIGKILL);
  REQUIRE(eventually([&] { return !ds[0]->alive(); }));
  REQUIRE_MESSAGE(eventually([&] { return all_in_state(*ds[1], k_runs, "completed"); }, 60s),
                  (ds[1]->log_tail() + ds[2]->log_tail()));
  check_exactly_once(*ds[1], k_runs, k_rounds);
  CHECK(sql(db, "SELECT count(*) FROM luad_runs WHERE node = 1") == "0");
  CHECK(sql(db, "SELECT min(epoch) FROM luad_runs") == "2");  // each claimed once more
  // Node 1 comes back: it joins again, and sees the others live.
  ds[0]->start();
  REQUIRE_MESSAGE(ds[0]->started(), ds[0]->log_tail());
  line_client c(ds[0]->socket());
  json::value st = result_of(c.call("cluster"));
  REQUIRE_MESSAGE(st.is_object(), text(st));
  CHECK(st.at("nodes").as_array().size() == 3);
}

TEST_CASE("cluster: a node paused past its lease is fenced when it wakes; nothing is doubled") {
  std::string db = luad::test::shared_postgres().new_database();
  auto ds = nodes(db, 2, 1.5, 0);
  constexpr int k_runs = 3, k_rounds = 10;
  for (int i = 0; i < k_runs; ++i) submit(*ds[0], i, k_rounds, 0.2);
  REQUIRE(eventually(
      [&] { return std::stoi("0" + sql(db, "SELECT min(steps) FROM luad_runs")) >= 4; }));
  ::kill(ds[0]->pid(), SIGSTOP);
  // Node 2 takes every run once node 1's lease has lapsed.
  bool taken = eventually(
      [&] { return sql(db, "SELECT count(*) FROM luad_runs WHERE node = 2") == "3"; }, 20s);
  ::kill(ds[0]->pid(), SIGCONT);
  REQUIRE_MESSAGE(taken, ds[1]->log_tail());
  REQUIRE_MESSAGE(eventually([&] { return all_in_state(*ds[1], k_runs, "completed"); }, 60s),
                  (ds[0]->log_tail() + ds[1]->log_tail()));
  check_exactly_once(*ds[1], k_runs, k_rounds);
  // The paused node found out, and its processes of those runs ended.
  REQUIRE(eventually([&] { return has(ds[0]->log_tail(), "another node"); }));
  CHECK(ds[0]->alive());
  line_client c(ds[0]->socket());
  json::value ps = result_of(c.call("list"));
  REQUIRE(ps.is_array());
  CHECK(ps.as_array().empty());
}

TEST_CASE("cluster: a node id is held by one daemon at a time") {
  std::string db = luad::test::shared_postgres().new_database();
  // A lease longer than a start may take: a restart after SIGKILL on the
  // same host must not wait it out (the holder's process is gone).
  auto ds = nodes(db, 1, 30, 0);
  ::kill(ds[0]->pid(), SIGKILL);
  REQUIRE(eventually([&] { return !ds[0]->alive(); }));
  ds[0]->start();
  REQUIRE_MESSAGE(ds[0]->started(), ds[0]->log_tail());
  CHECK(has(ds[0]->log_tail(), "last daemon (pid"));
  // A second daemon with the same id waits out the live one's lease, then
  // gives up (a 1 s lease here).
  ds[0]->stop(2s);
  ds = nodes(db, 1, 1, 0);
  daemon_process twin(node_config(db, 1, 1, 0));
  CHECK_FALSE(twin.started());
  CHECK(eventually([&] { return !twin.alive(); }));
  CHECK(twin.how_it_ended() == "exit 1");
  CHECK(has(twin.log_tail(), "node 1 is held by a running daemon"));
  // Without PostgreSQL's config, [cluster] is refused.
  daemon_process lone(daemon_config("", "[cluster]\nnode = 2\n"));
  CHECK_FALSE(lone.started());
  CHECK(has(lone.log_tail(), "cluster: needs [storage] backend = \"postgres\""));
}

TEST_CASE("cluster: PostgreSQL restarted under load: runs wait for it and finish exactly once") {
  auto& pg = luad::test::shared_postgres();
  std::string db = pg.new_database();
  auto ds = nodes(db, 2, 3, 0);
  constexpr int k_runs = 6, k_rounds = 12;
  for (int i = 0; i < k_runs; ++i) submit(*ds[i % 2], i, k_rounds, 0.1);
  REQUIRE(eventually(
      [&] { return std::stoi("0" + sql(db, "SELECT min(steps) FROM luad_runs")) >= 4; }));
  pg.restart();
  REQUIRE_MESSAGE(eventually([&] { return all_in_state(*ds[0], k_runs, "completed"); }, 60s),
                  (ds[0]->log_tail() + ds[1]->log_tail()));
  check_exactly_once(*ds[0], k_runs, k_rounds);
  for (auto& d : ds) CHECK(d->alive());
  // A plain store write while the server is down gets `unavailable`,
  // retryable, and the daemon stays up.
  pg.stop_immediately();
  json::value r = run_once(*ds[0], R"(
    local ok, err = require("store").set("k", 1)
    return {ok = ok, kind = err and err.kind, retryable = err and err.retryable})");
  pg.start();
  INFO(text(r));
  CHECK(r.at("kind") == "unavailable");
  CHECK(r.at("retryable") == true);
  CHECK(ds[0]->alive());
}

TEST_CASE("cluster: workflow.wait on a child that another node runs is answered when it ends") {
  // The parent and its child start on node 1; node 1 is killed; nodes 2 and
  // 3 (room for one run each) take one each. The parent's wait, replayed on
  // one node, is answered when the child ends on the other (NOTIFY), long
  // before its 120 s timeout.
  std::string db = luad::test::shared_postgres().new_database();
  // One scripts folder for every node, at one path: a journal records a
  // child's script by its path (docs/cluster.md, "Configuration").
  auto shared = std::filesystem::temp_directory_path() /
                ("luad_cluster_scripts_" + std::to_string(::getpid()));
  std::filesystem::remove_all(shared);
  write_file(shared / "parent.lua", R"(
local workflow = require("workflow")
local id = assert(workflow.start("child.lua"))
return workflow.wait(id, 120)
)");
  write_file(shared / "child.lua", R"(
local time = require("time")
for _ = 1, 16 do time.sleep(0.25) end
return "child done"
)");
  std::vector<std::unique_ptr<daemon_process>> ds;
  for (int i = 1; i <= 3; ++i) {
    std::string cfg = node_config(db, i, 1.5, i == 1 ? 0 : 1);
    const std::string own_roots = "roots = [\"scripts\"]";
    REQUIRE(cfg.find(own_roots) != std::string::npos);
    cfg.replace(cfg.find(own_roots), own_roots.size(), "roots = [\"" + shared.string() + "\"]");
    ds.push_back(std::make_unique<daemon_process>(cfg));
    REQUIRE_MESSAGE(ds.back()->started(), ds.back()->log_tail());
  }
  line_client c(ds[0]->socket());
  json::value r = c.call("spawn", {{"script", "parent.lua"}, {"durable", true}});
  REQUIRE_MESSAGE(result_of(r).is_object(), text(r));
  std::string parent(result_of(r).at("run").as_string());
  REQUIRE(eventually([&] {
    return sql(db,
               "SELECT count(*) FROM luad_runs WHERE encode(id, 'escape') LIKE 'c-%' AND steps >= "
               "2 AND state NOT IN ('completed', 'failed')") == "1";
  }));
  ::kill(ds[0]->pid(), SIGKILL);
  REQUIRE(eventually([&] { return !ds[0]->alive(); }));
  REQUIRE_MESSAGE(
      eventually(
          [&] {
            return sql(db, "SELECT string_agg(node::text, ',' ORDER BY node) FROM luad_runs") ==
                   "2,3";
          },
          20s),
      (sql(db,
           "SELECT string_agg(encode(id, 'escape') || ':' || state || ':' ||"
           " coalesce(node::text, '-'), ' ') FROM luad_runs") +
       ds[1]->log_tail() + ds[2]->log_tail()));
  REQUIRE_MESSAGE(eventually(
                      [&] {
                        auto runs = runs_of(*ds[1]);
                        return runs.count(parent) && runs.at(parent).at("state") == "completed";
                      },
                      40s),
                  (ds[1]->log_tail() + ds[2]->log_tail()));
  CHECK(text(runs_of(*ds[1]).at(parent).at("detail").at("results")) == "[\"child done\"]");
  std::filesystem::remove_all(shared);
}
