// Durable runs against the real `luad serve`, killed with SIGKILL and started
// again: runs finish with the results of an uninterrupted run, store
// increments are neither doubled nor lost, journaled http steps are not sent
// again, sleeps keep their deadlines; a run whose replay diverges is
// suspended, resumed after a fix, or terminated; a corrupt journal row
// suspends its run only. (docs/workflows.md, "Durable runs".)
#include <doctest/doctest.h>
#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <map>
#include <random>
#include <string>

#include "tests/hostile/daemon_process.hpp"
#include "tests/http_server.hpp"
#include "tests/server/durable_support.hpp"

namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using luad::test::eventually;
using luad::test::has;
using luad_hostile::daemon_process;
using luad_hostile::line_client;
using namespace std::chrono_literals;
using namespace luad::test::durable;  // NOLINT(google-build-using-namespace): shared helpers

// True once `run`'s step `step` is a sleep whose deadline is durable (the
// timer starts only after that: a run killed before has not begun its sleep).
bool sleep_journaled(line_client& c, const std::string& run, std::size_t step) {
  return eventually([&] {
    json::value h = result_of(c.call("run_history", {{"run", run}}));
    return h.is_object() && h.at("steps").as_array().size() == step + 1 &&
           h.at("steps").at(step).at("state") == "started";
  });
}

// Each run: six rounds of a store increment, an http call and a short
// sleep; returns the sum of what the increments answered (1 + ... + 6 = 21
// when none is doubled or lost) and how many http calls it saw succeed.
constexpr const char* k_mixed = R"(
local store, time, http = require("store"), require("time"), require("http")
local id, url = ...
local sum, calls = 0, 0
for round = 1, 6 do
  sum = sum + assert(store.incr("c" .. id, 1))
  local r = assert(http.get(url))
  if r.status == 200 then calls = calls + 1 end
  time.sleep(0.1 + (round % 3) * 0.05)
end
return sum, calls
)";

}  // namespace

TEST_CASE("durable runs: SIGKILL at random points, restart, and every run ends as if never cut") {
  // On each backend: SQLite's file, and a PostgreSQL database.
  for_each_storage([](const std::string& storage, const std::string& db) {
    luad::test::http_server web;
    daemon_process d(daemon_config("\"store:t\", \"" + web.permission() + "\"", "", storage));
    REQUIRE_MESSAGE(d.started(), d.log_tail());
    write_file(d.dir() / "scripts" / "mixed.lua", k_mixed);
    constexpr int k_runs = 8;
    {
      line_client c(d.socket());
      for (int i = 0; i < k_runs; ++i) {
        json::value r = c.call("spawn", {{"script", "mixed.lua"},
                                         {"durable", true},
                                         {"args", json::array{i, web.url("/echo")}}});
        REQUIRE_MESSAGE(result_of(r).is_object(), text(r));
        CHECK(result_of(r).at("run").as_string().starts_with("r-"));
      }
    }
    // Kill it at random points while the runs go on, a bounded number of times.
    std::mt19937 rng(20261201);
    int crashes = 0;
    for (int round = 0; round < 10 && !all_in_state(d, k_runs, "completed"); ++round) {
      std::this_thread::sleep_for(std::chrono::milliseconds(40 + rng() % 200));
      ::kill(d.pid(), SIGKILL);
      REQUIRE(eventually([&] { return !d.alive(); }));
      ++crashes;
      d.start();
      REQUIRE_MESSAGE(d.started(), d.log_tail());
    }
    REQUIRE_MESSAGE(eventually([&] { return all_in_state(d, k_runs, "completed"); }, 30s),
                    d.log_tail());
    MESSAGE(crashes, " crashes; ", web.requests(), " http requests for ", k_runs * 6, " steps");
    CHECK(crashes >= 4);
    for (const auto& [id, r] : runs_of(d)) {
      INFO(id, ": ", text(r));
      // The exit's results are those of an uninterrupted run.
      const json::value* detail = r.if_contains("detail");
      REQUIRE(detail);
      CHECK(text(detail->at("results")) == "[21,6]");
      CHECK(r.at("steps").as_int64() == 18);
    }
    // Each counter went to 6 exactly: never doubled, never lost.
    for (int i = 0; i < k_runs; ++i)
      CHECK(run_once(d, "return require('store').get('c" + std::to_string(i) + "')") == 6);
    // Every http step went out with its own key; one sent again only if a
    // crash cut it between the request and its journal entry.
    auto keys = web.idempotency_keys();
    CHECK(keys.size() == k_runs * 6);
    int again = 0;
    for (const auto& [key, n] : keys) again += n - 1;
    CHECK(again <= crashes * k_runs);
    CHECK(web.requests() == static_cast<int>(keys.size()) + again);
    if (!db.empty()) CHECK(runs_in_postgres(db) == std::to_string(k_runs));
    CHECK(fs::exists(d.dir() / "data") == db.empty());
  });
}

TEST_CASE("durable runs: a sleep cut by a crash ends at its first deadline") {
  daemon_process d(daemon_config("\"store:t\""));
  REQUIRE_MESSAGE(d.started(), d.log_tail());
  line_client c(d.socket());
  json::value r = c.call("spawn", {{"source", R"(
    local workflow, time = require("workflow"), require("time")
    local t0 = workflow.now()
    time.sleep(1.5)
    return workflow.now() - t0)"},
                                   {"durable", true}});
  REQUIRE_MESSAGE(result_of(r).is_object(), text(r));
  std::string run(result_of(r).at("run").as_string());
  // Sleeping, and its deadline durable (the timer starts only after that;
  // killed before, the sleep would not have begun and would run whole).
  REQUIRE(sleep_journaled(c, run, 1));
  ::kill(d.pid(), SIGKILL);
  REQUIRE(eventually([&] { return !d.alive(); }));
  std::this_thread::sleep_for(700ms);  // the daemon is down: the sleep's time still passes
  d.start();
  REQUIRE_MESSAGE(d.started(), d.log_tail());
  REQUIRE_MESSAGE(eventually([&] { return all_in_state(d, 1, "completed"); }, 10s), d.log_tail());
  auto runs = runs_of(d);
  double slept = runs.begin()->second.at("detail").at("results").at(0).to_number<double>();
  MESSAGE("slept ", slept, " s across a crash (asked 1.5 s, down 0.7 s)");
  CHECK(slept >= 1.45);
  CHECK(slept < 2.1);  // not 1.5 again after the restart
}

TEST_CASE("durable runs: a diverging replay is suspended, resumed after a fix, or terminated") {
  daemon_process d(daemon_config("\"store:t\""));
  REQUIRE_MESSAGE(d.started(), d.log_tail());
  fs::path script = d.dir() / "scripts" / "flow.lua";
  write_file(script, R"(
    local store, time = require("store"), require("time")
    store.incr("a", 1)
    time.sleep(30)
    return "v1")");
  line_client c(d.socket());
  json::value r = c.call("spawn", {{"script", "flow.lua"}, {"durable", true}});
  REQUIRE_MESSAGE(result_of(r).is_object(), text(r));
  std::string run(result_of(r).at("run").as_string());
  REQUIRE(eventually([&] { return all_in_state(d, 1, "sleeping"); }));
  REQUIRE(sleep_journaled(c, run, 1));
  REQUIRE(d.stop(5s));  // SIGTERM: the run stays unfinished, to be resumed
  CHECK(has(d.log_tail(), "stopped"));

  // New code that asks for something else at step 0: the replay stops there.
  write_file(script, R"(
    local store, time = require("store"), require("time")
    store.incr("b", 1)
    time.sleep(0)
    return "v2")");
  d.start();
  REQUIRE_MESSAGE(d.started(), d.log_tail());
  REQUIRE(eventually([&] { return all_in_state(d, 1, "suspended"); }));
  json::object suspended = runs_of(d).at(run);
  INFO(text(suspended));
  const json::value& report = suspended.at("detail");
  CHECK(report.at("reason") == "nondeterminism");
  CHECK(report.at("step") == 0);
  CHECK(has(text(report.at("expected")), "\"key\":\"a\""));
  CHECK(has(text(report.at("got")), "\"key\":\"b\""));
  CHECK(has(d.log_tail(), "durable run " + run + " suspended"));
  // The counter the new code asked for was not touched.
  CHECK(run_once(d, "return require('store').get('b')").is_null());

  // resume without a fix diverges again; with the old code restored it goes on.
  write_file(script, R"(
    local store, time = require("store"), require("time")
    store.incr("a", 1)
    time.sleep(0)
    return "v1, fixed")");
  line_client c2(d.socket());  // the first connection went with the first daemon
  json::value resumed = c2.call("run_resume", {{"run", run}});
  // (time.sleep(0) vs the journal's sleep(30): other args, so it is suspended again)
  REQUIRE_MESSAGE(result_of(resumed).is_object(), text(resumed));
  REQUIRE(eventually([&] { return all_in_state(d, 1, "suspended"); }));
  CHECK(runs_of(d).at(run).at("detail").at("step") == 1);
  write_file(script, R"(
    local store, time = require("store"), require("time")
    store.incr("a", 1)
    time.sleep(30)
    return "v1")");
  resumed = c2.call("run_resume", {{"run", run}});
  REQUIRE_MESSAGE(result_of(resumed).is_object(), text(resumed));
  REQUIRE(eventually([&] { return all_in_state(d, 1, "sleeping"); }));
  CHECK(run_once(d, "return require('store').get('a')") == 1);  // replayed, not redone

  // A second resume of a live run is refused; terminate ends it for good.
  json::value twice = c2.call("run_resume", {{"run", run}});
  CHECK(has(text(twice), "is running"));
  json::value t = c2.call("run_terminate", {{"run", run}});
  CHECK_MESSAGE(result_of(t) == true, text(t));
  REQUIRE(eventually([&] { return all_in_state(d, 1, "terminated"); }));
  // (The state is written before the kill lands: its pid goes once it has.)
  CHECK(eventually([&] { return runs_of(d).at(run).if_contains("pid") == nullptr; }));
  json::value again = c2.call("run_terminate", {{"run", run}});
  CHECK(has(text(again), "already terminated"));
  CHECK(has(text(c2.call("run_history", {{"run", "r-none"}})), "no durable run 'r-none'"));
}

TEST_CASE("durable runs: a corrupt journal row suspends its run, naming it; the others resume") {
  daemon_process d(daemon_config("\"store:t\""));
  REQUIRE_MESSAGE(d.started(), d.log_tail());
  line_client c(d.socket());
  std::string ids[2];
  for (auto& id : ids) {
    json::value r = c.call("spawn", {{"source", R"(
      local store, time = require("store"), require("time")
      store.incr("n", 1)
      time.sleep(0.4)
      return "done")"},
                                     {"durable", true}});
    REQUIRE_MESSAGE(result_of(r).is_object(), text(r));
    id = std::string(result_of(r).at("run").as_string());
  }
  REQUIRE(eventually([&] { return all_in_state(d, 2, "sleeping"); }));
  ::kill(d.pid(), SIGKILL);
  REQUIRE(eventually([&] { return !d.alive(); }));
  // Truncate the first run's step 0 result, as a torn write would.
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open((d.dir() / "data" / "luad.db").c_str(), &db) == SQLITE_OK);
  std::string sql = "UPDATE journal SET result = x'ff' WHERE run = '" + ids[0] + "' AND step = 0";
  CHECK(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr) == SQLITE_OK);
  CHECK(sqlite3_changes(db) == 1);
  sqlite3_close(db);
  d.start();
  REQUIRE_MESSAGE(d.started(), d.log_tail());
  REQUIRE(eventually([&] {
    auto runs = runs_of(d);
    return runs.size() == 2 && runs[ids[0]].at("state") == "suspended" &&
           runs[ids[1]].at("state") == "completed";
  }));
  json::object bad = runs_of(d).at(ids[0]);
  INFO(text(bad));
  CHECK(bad.at("detail").at("reason") == "journal");
  CHECK(has(text(bad.at("detail")), "run '" + ids[0] + "' step 0"));
  CHECK(has(d.log_tail(), "durable run " + ids[0] + " suspended"));
  // The history says the same; the other run's is whole.
  line_client c2(d.socket());  // the first connection went with the first daemon
  CHECK(has(text(c2.call("run_history", {{"run", ids[0]}})), "step 0"));
  json::value h = result_of(c2.call("run_history", {{"run", ids[1]}}));
  REQUIRE(h.is_object());
  CHECK(h.at("steps").as_array().size() == 2);
  CHECK(h.at("steps").at(0).at("command") == "storage.op");
}

TEST_CASE("durable runs: a stranger may not read, resume or end another owner's run") {
  daemon_process d(daemon_config("\"store:t\""));
  REQUIRE_MESSAGE(d.started(), d.log_tail());
  line_client c(d.socket());
  json::value r = c.call("spawn", {{"source", "return 'secret result'"}, {"durable", true}});
  REQUIRE_MESSAGE(result_of(r).is_object(), text(r));
  std::string run(result_of(r).at("run").as_string());
  REQUIRE(eventually([&] { return all_in_state(d, 1, "completed"); }));
  CHECK(has(text(runs_of(d).at(run)), "secret result"));  // root reads its own
  // Another uid (a privileged peer acting as it, unprivileged) sees the run
  // listed, but not its results, and may not touch it.
  json::object as_nobody{{"as_uid", 65534}};
  json::value listed = result_of(c.call("runs", as_nobody));
  REQUIRE(listed.is_array());
  CHECK(!has(text(listed), "secret result"));
  CHECK(has(text(listed), run));
  for (const char* method : {"run_history", "run_resume", "run_terminate"}) {
    json::object p = as_nobody;
    p["run"] = run;
    json::value refused = c.call(method, p);
    INFO(method, ": ", text(refused));
    CHECK(has(text(refused), "-32001"));
    CHECK(has(text(refused), "belongs to uid:0"));
  }
  CHECK(runs_of(d).at(run).at("state") == "completed");
}

TEST_CASE("durable runs: continue_as_new chains runs with fresh journals, across a crash") {
  daemon_process d(daemon_config("\"store:t\""));
  REQUIRE_MESSAGE(d.started(), d.log_tail());
  write_file(d.dir() / "scripts" / "loop.lua", R"(
    local store, time, workflow = require("store"), require("time"), require("workflow")
    local n = ...
    store.incr("loops", 1)
    time.sleep(0.2)
    if n < 4 then workflow.continue_as_new(n + 1) end
    return n)");
  {
    line_client c(d.socket());
    json::value r =
        c.call("spawn", {{"script", "loop.lua"}, {"durable", true}, {"args", json::array{1}}});
    REQUIRE_MESSAGE(result_of(r).is_object(), text(r));
  }
  // A crash once the chain is under way.
  REQUIRE(eventually([&] { return runs_of(d).size() >= 2; }));
  ::kill(d.pid(), SIGKILL);
  REQUIRE(eventually([&] { return !d.alive(); }));
  // As if it came after the next run was recorded but before this one was
  // completed: the first run replays up to its continue_as_new again.
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open((d.dir() / "data" / "luad.db").c_str(), &db) == SQLITE_OK);
  CHECK(sqlite3_exec(db,
                     "UPDATE runs SET state = 'running', detail = ''"
                     " WHERE created = (SELECT MIN(created) FROM runs)",
                     nullptr, nullptr, nullptr) == SQLITE_OK);
  CHECK(sqlite3_changes(db) == 1);
  sqlite3_close(db);
  d.start();
  REQUIRE_MESSAGE(d.started(), d.log_tail());
  REQUIRE_MESSAGE(eventually([&] { return all_in_state(d, 4, "completed"); }, 20s), d.log_tail());
  // Each run continued as the next (oldest first), with a journal of its own.
  std::vector<json::object> chain;
  for (auto& [id, r] : runs_of(d)) chain.push_back(r);
  std::sort(chain.begin(), chain.end(), [](const json::object& a, const json::object& b) {
    return a.at("created").to_number<double>() < b.at("created").to_number<double>();
  });
  for (std::size_t i = 0; i < chain.size(); ++i) {
    INFO(i, ": ", text(chain[i]));
    CHECK(chain[i].at("steps").as_int64() == 2);  // the incr and the sleep
    if (i + 1 < chain.size())
      CHECK(chain[i].at("detail").at("continued_as") == chain[i + 1].at("run"));
  }
  CHECK(text(chain.back().at("detail").at("results")) == "[4]");
  CHECK(run_once(d, "return require('store').get('loops')") == 4);  // none twice
  // Not durable: refused, with a word.
  line_client c(d.socket());
  json::value plain =
      c.call("spawn", {{"source", "require('workflow').continue_as_new(1)"}, {"wait", true}}, 10s);
  CHECK(has(text(plain), "only a durable run can continue as new"));
  // A run that would continue before any step of its own (a chain of empty
  // runs, as fast as the disk takes them) fails instead.
  json::value empty = c.call(
      "spawn",
      {{"source", "require('workflow').continue_as_new(1)"}, {"durable", true}, {"wait", true}},
      10s);
  CHECK(has(text(empty), "continues as new only after a step"));
  CHECK(runs_of(d).size() == 5);  // that run, failed; no other
}

TEST_CASE("durable runs: messages sent by name are received exactly once across a SIGKILL") {
  for_each_storage([](const std::string& storage, const std::string& db) {
    daemon_process d(daemon_config("\"store:t\"", "", storage));
    REQUIRE_MESSAGE(d.started(), d.log_tail());
    line_client c(d.socket());
    json::value r = c.call("spawn", {{"source", R"(
    local process, store = require("process"), require("store")
    process.register("acc")
    local sum = 0
    for _ = 1, 5 do
      local m = process.receive("add")
      sum = sum + m.payload
      store.incr("seen", 1)
    end
    return sum)"},
                                     {"durable", true}});
    REQUIRE_MESSAGE(result_of(r).is_object(), text(r));
    std::string run(result_of(r).at("run").as_string());
    // Sends by name; a daemon that was just started may not have it registered
    // again yet, so each send is retried until it is accepted.
    auto send = [&](line_client& to, int n) {
      REQUIRE(eventually([&] {
        json::value s = to.call("send", {{"to", "acc"}, {"topic", "add"}, {"payload", n}});
        return result_of(s) == true;
      }));
    };
    send(c, 1);
    send(c, 2);
    REQUIRE(eventually([&] {
      json::value h = result_of(c.call("run_history", {{"run", run}}));
      return h.is_object() && h.at("steps").as_array().size() == 4;  // 2 receives, 2 incrs
    }));
    send(c, 3);  // recorded, perhaps received, when the daemon dies
    ::kill(d.pid(), SIGKILL);
    REQUIRE(eventually([&] { return !d.alive(); }));
    d.start();
    REQUIRE_MESSAGE(d.started(), d.log_tail());
    line_client c2(d.socket());
    send(c2, 4);
    send(c2, 5);
    REQUIRE_MESSAGE(eventually([&] { return all_in_state(d, 1, "completed"); }, 15s), d.log_tail());
    auto runs = runs_of(d);
    CHECK(text(runs.begin()->second.at("detail").at("results")) == "[15]");
    CHECK(run_once(d, "return require('store').get('seen')") == 5);
    // The receives are in its history, each with the message it took.
    json::value h = result_of(c2.call("run_history", {{"run", run}}));
    REQUIRE(h.is_object());
    CHECK(h.at("steps").as_array().size() == 10);
    CHECK(has(text(h.at("steps").at(0)), "\"receive\""));
    if (!db.empty()) CHECK(runs_in_postgres(db) == "1");
  });
}
