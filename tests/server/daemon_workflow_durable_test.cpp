// Config workflows with `durable = true` and `schedule` against the real
// `luad serve`: a durable workflow's run survives SIGKILL and is resumed by
// replay (never started twice), a restart on new code replays it, and the
// ticks of a schedule missed while the daemon was down run as `catchup`
// says. (docs/workflows.md, "Durable workflows in the config", "Schedules".)
#include <doctest/doctest.h>
#include <sqlite3.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "tests/hostile/daemon_process.hpp"
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

constexpr const char* k_head =
    "[server]\nsocket = \"luad.sock\"\ngrace_period = 0.5\nworkers = 2\n"
    "[storage]\ndata_dir = \"data\"\n"
    "[scripts]\nwatch = false\n"
    "[[profile]]\nname = \"default\"\npermissions = [\"store:t\"]\n";

// The `workflows` listing entry of workflow `name` (null if absent).
json::value listed(daemon_process& d, const std::string& name) {
  line_client c(d.socket());
  json::value all = result_of(c.call("workflows"));
  if (!all.is_array()) return nullptr;
  for (const auto& w : all.as_array())
    if (w.at("name") == name.c_str()) return w;
  return nullptr;
}

// The runs of workflow `name`, as `runs` lists them (oldest first).
json::array runs_named(daemon_process& d, const std::string& name) {
  line_client c(d.socket());
  json::array out;
  json::value all = result_of(c.call("runs"));
  if (!all.is_array()) return out;
  for (const auto& r : all.as_array())
    if (r.at("workflow") == name.c_str()) out.push_back(r);
  return out;
}

bool all_completed(const json::array& runs, std::size_t n) {
  if (runs.size() != n) return false;
  for (const auto& r : runs)
    if (r.at("state") != "completed") return false;
  return true;
}

json::value store_get(daemon_process& d, const std::string& key) {
  return run_once(d, "return require('store').get('" + key + "')");
}

// Increments "wf", sleeps, increments again: 3 (1 + 2) when no step ran twice.
constexpr const char* k_counter = R"(
local store, time = require("store"), require("time")
local a = store.incr("wf", 1)
time.sleep(0.6)
local b = store.incr("wf", 1)
return a + b, "v1"
)";

}  // namespace

TEST_CASE("durable workflow: its run survives SIGKILL, resumed by replay, never started twice") {
  luad::test::temp_dir scripts("wf-scripts");
  write_file(scripts.path() / "counter.lua", k_counter);
  std::string config = std::string(k_head) + "[[workflow]]\nname = \"counter\"\nscript = \"" +
                       (scripts.path() / "counter.lua").string() +
                       "\"\ndurable = true\npermissions = [\"store:t\"]\n";
  daemon_process d(config);
  REQUIRE_MESSAGE(d.started(), d.log_tail());
  // Listed as durable, with its one run.
  json::value w;
  REQUIRE(eventually([&] {
    w = listed(d, "counter");
    return w.is_object() && w.at("runs").as_array().size() == 1;
  }));
  INFO(text(w));
  CHECK(w.at("durable") == true);
  CHECK(w.at("state") == "running");
  std::string run(w.at("runs").at(0).at("run").as_string());
  // Killed while it sleeps (its first step journaled), and started again.
  REQUIRE(eventually([&] {
    auto runs = runs_named(d, "counter");
    return runs.size() == 1 && runs[0].at("steps").as_int64() >= 1;
  }));
  ::kill(d.pid(), SIGKILL);
  REQUIRE(eventually([&] { return !d.alive(); }));
  d.start();
  REQUIRE_MESSAGE(d.started(), d.log_tail());
  // The same run finishes: the boot start found it unfinished and did not
  // start another.
  REQUIRE_MESSAGE(eventually([&] { return all_completed(runs_named(d, "counter"), 1); }, 15s),
                  d.log_tail());
  json::array runs = runs_named(d, "counter");
  CHECK(runs[0].at("run") == run.c_str());
  CHECK(runs[0].at("owner") == "workflow:counter");
  CHECK(text(runs[0].at("detail").at("results")) == "[3,\"v1\"]");
  CHECK(store_get(d, "wf") == 2);
  // A clean restart with its run completed: start = "boot" starts a new run.
  d.stop(5s);
  d.start();
  REQUIRE_MESSAGE(d.started(), d.log_tail());
  REQUIRE_MESSAGE(eventually([&] { return all_completed(runs_named(d, "counter"), 2); }, 15s),
                  d.log_tail());
  CHECK(store_get(d, "wf") == 4);
}

TEST_CASE("durable workflow: new code restarts its run by replay, not from the top") {
  luad::test::temp_dir scripts("wf-scripts");
  fs::path script = scripts.path() / "counter.lua";
  std::string v1 = k_counter;
  v1.replace(v1.find("0.6"), 3, "30");  // a long sleep: still asleep when the code changes
  write_file(script, v1);
  std::string config = std::string(k_head) + "[[workflow]]\nname = \"counter\"\nscript = \"" +
                       script.string() +
                       "\"\ndurable = true\nreload = \"restart\"\npermissions = [\"store:t\"]\n";
  daemon_process d(config);
  REQUIRE_MESSAGE(d.started(), d.log_tail());
  REQUIRE(eventually([&] {
    auto runs = runs_named(d, "counter");
    return runs.size() == 1 && runs[0].at("steps").as_int64() == 2;  // incr, then the sleep
  }));
  std::string run(runs_named(d, "counter")[0].at("run").as_string());
  std::string old_pid(listed(d, "counter").at("runs").at(0).at("pid").as_string());
  // The same steps (the same sleep: a replay compares each command's args),
  // another result.
  std::string v2 = v1;
  v2.replace(v2.find("\"v1\""), 4, "\"v2\"");
  write_file(script, v2);
  line_client c(d.socket());
  json::value r = c.call("reload", {{"path", script.string()}});
  INFO(text(r));
  CHECK(has(text(r), "counter"));
  // Replayed: the same run, a new process, the first increment not done again.
  REQUIRE_MESSAGE(eventually([&] {
                    json::value w = listed(d, "counter");
                    const auto& runs = w.at("runs").as_array();
                    return runs.size() == 1 && runs[0].as_object().contains("pid") &&
                           runs[0].at("pid") != old_pid.c_str();
                  }),
                  d.log_tail());
  CHECK(has(d.log_tail(), "restarted on new code"));
  auto runs = runs_named(d, "counter");
  REQUIRE(runs.size() == 1);
  CHECK(runs[0].at("run") == run.c_str());
  CHECK(store_get(d, "wf") == 1);
  // Its sleep is the journal's, still running to its first deadline: no
  // CANCEL reached it (that would have ended the step, and the run with it).
  json::value h = result_of(c.call("run_history", {{"run", run}}));
  INFO(text(h));
  REQUIRE(h.is_object());
  CHECK(h.at("steps").as_array().size() == 2);
  CHECK(h.at("steps").at(1).at("state") == "started");
  CHECK(h.at("state") == "running");
  // New code that fails once it has replayed: the run fails, and that is
  // all. No trial watches a durable workflow, so no rollback starts the
  // workflow again, which would begin a fresh run from the top.
  std::string v3 = v2;
  v3.replace(v3.find("time.sleep"), 10, "error('v3 broken') time.sleep");
  write_file(script, v3);
  c.call("reload", {{"path", script.string()}});
  REQUIRE_MESSAGE(eventually([&] {
                    auto now = runs_named(d, "counter");
                    return !now.empty() && now[0].at("state") == "failed";
                  }),
                  d.log_tail());
  CHECK_FALSE(eventually([&] { return runs_named(d, "counter").size() > 1; }, 2s));
  CHECK(store_get(d, "wf") == 1);
  CHECK_FALSE(has(d.log_tail(), "the new code failed within"));
}

namespace {

// The start of the current UTC minute, in unix seconds.
std::int64_t this_minute() {
  auto now = std::chrono::system_clock::now().time_since_epoch();
  return std::chrono::duration_cast<std::chrono::minutes>(now).count() * 60;
}

// A completed run of workflow `name` started for schedule tick `tick`, as
// the daemon would have left it before it went down.
void seed_run(const fs::path& db_path, const std::string& name, std::int64_t tick) {
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open(db_path.c_str(), &db) == SQLITE_OK);
  std::string sql =
      "INSERT INTO runs (id, workflow, owner, script, code_hash, args, state, detail,"
      " created, updated, spawn) VALUES ('r-seed-" +
      name + "', '" + name + "', 'workflow:" + name +
      "', 'tick.lua', '0', x'', 'completed', '{}', 0, 0, '{\"workflow\":\"" + name +
      "\",\"tick\":" + std::to_string(tick) + "}')";
  CHECK(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr) == SQLITE_OK);
  sqlite3_close(db);
}

}  // namespace

TEST_CASE("schedule: the ticks missed while the daemon was down run as catchup says") {
  luad::test::temp_dir scripts("wf-scripts");
  write_file(scripts.path() / "tick.lua", "return 'ticked'\n");
  daemon_process d{std::string(k_head)};  // (makes the database)
  REQUIRE_MESSAGE(d.started(), d.log_tail());
  REQUIRE(d.stop(5s));
  // Each workflow last ran 5 minutes ago: 5 ticks missed since.
  std::int64_t minute = this_minute();
  for (const char* name : {"all", "one", "none"})
    seed_run(d.dir() / "data" / "luad.db", name, minute - 5 * 60);
  std::string config = k_head;
  for (const char* name : {"all", "one", "none"})
    config += "[[workflow]]\nname = \"" + std::string(name) + "\"\nscript = \"" +
              (scripts.path() / "tick.lua").string() +
              "\"\nschedule = \"* * * * *\"\ncatchup = \"" + name + "\"\n";
  write_file(d.dir() / "luad.toml", config);
  d.start();
  REQUIRE_MESSAGE(d.started(), d.log_tail());
  // A minute that turns meanwhile adds its live tick to each workflow.
  auto counts_are = [&](std::size_t extra) {
    return all_completed(runs_named(d, "all"), 1 + 5 + extra) &&
           all_completed(runs_named(d, "one"), 1 + 1 + extra) &&
           all_completed(runs_named(d, "none"), 1 + extra);
  };
  REQUIRE_MESSAGE(eventually([&] { return counts_are((this_minute() - minute) / 60); }, 15s),
                  d.log_tail());
  std::size_t extra = (this_minute() - minute) / 60;
  MESSAGE("minutes turned during the test: ", extra);
  // catchup = "all": one run per missed tick, oldest first, each its tick.
  json::value w = listed(d, "all");
  INFO(text(w));
  CHECK(w.at("durable") == true);
  CHECK(w.at("schedule") == "* * * * *");
  CHECK(w.at("next_tick").to_number<double>() > static_cast<double>(minute));
  json::array all = runs_named(d, "all");
  std::vector<std::int64_t> ticks;
  for (const auto& run : w.at("runs").as_array())
    if (run.as_object().contains("tick")) ticks.push_back(run.at("tick").to_number<std::int64_t>());
  CHECK(ticks.size() == 1);  // the listing shows the latest finished run
  CHECK(ticks.back() == minute + static_cast<std::int64_t>(extra) * 60);
  CHECK(text(all.back().at("detail").at("results")) == "[\"ticked\"]");
  CHECK(has(d.log_tail(), "workflow all: 5 missed ticks run (catchup = all)"));
  CHECK(has(d.log_tail(), "workflow one: 1 missed ticks run (catchup = one)"));
  // The CLI: durable in the RESTART column, the schedule and its next tick.
  std::string cmd =
      std::string("'") + LUAD_BINARY + "' workflows --socket '" + d.socket() + "' 2>&1";
  std::string out;
  if (FILE* pipe = ::popen(cmd.c_str(), "r")) {
    char buf[4096];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, pipe)) > 0) out.append(buf, n);
    ::pclose(pipe);
  }
  INFO(out);
  CHECK(has(out, "durable"));
  CHECK(has(out, "schedule: * * * * * (catchup all), next tick 20"));
}

TEST_CASE("examples/billing.lua: orders sent by name are charged once across a SIGKILL") {
  std::string config = std::string(k_head) + "[[workflow]]\nname = \"billing\"\nscript = \"" +
                       LUAD_SOURCE_DIR +
                       "/examples/billing.lua\"\ndurable = true\n"
                       "args = [\"1\", \"0\", \"0.4\", \"3\"]\npermissions = [\"store:t\"]\n";
  daemon_process d(config);
  REQUIRE_MESSAGE(d.started(), d.log_tail());
  int cents = 0;
  auto order = [&](int n) {
    REQUIRE(eventually([&] {
      line_client c(d.socket());
      json::value r =
          c.call("send", {{"to", "billing"},
                          {"topic", "order"},
                          {"payload", {{"id", "o-" + std::to_string(n)}, {"cents", n}}}});
      return result_of(r) == true;
    }));
    cents += n;
  };
  order(100);
  order(20);
  REQUIRE(eventually([&] { return runs_named(d, "billing").size() >= 2; }));  // a cycle done
  order(3);
  ::kill(d.pid(), SIGKILL);
  REQUIRE(eventually([&] { return !d.alive(); }));
  d.start();
  REQUIRE_MESSAGE(d.started(), d.log_tail());
  order(4000);
  REQUIRE_MESSAGE(eventually([&] { return all_completed(runs_named(d, "billing"), 3); }, 20s),
                  d.log_tail());
  json::array runs = runs_named(d, "billing");
  INFO(text(runs));
  CHECK(text(runs.back().at("detail").at("results")) == "[" + std::to_string(cents) + "]");
  for (int n : {100, 20, 3, 4000})
    CHECK(store_get(d, "charged:o-" + std::to_string(n)) == n);  // each once
  CHECK(store_get(d, "cycle:3").at("total") == cents);
}
