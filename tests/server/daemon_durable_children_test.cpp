// Children of durable runs against the real `luad serve`, killed with SIGKILL
// and started again: a child started by workflow.start or process.spawn is a
// durable run of its own, started once however often its parent's start is
// replayed; workflow.wait records the child's end (its results or its
// error). (docs/workflows.md, "Children".)
#include <doctest/doctest.h>
#include <sqlite3.h>

#include <chrono>
#include <csignal>
#include <string>

#include "tests/hostile/daemon_process.hpp"
#include "tests/server/durable_support.hpp"

namespace {

namespace json = boost::json;
using luad::test::eventually;
using luad::test::has;
using luad_hostile::daemon_process;
using luad_hostile::line_client;
using namespace std::chrono_literals;
using namespace luad::test::durable;  // NOLINT(google-build-using-namespace): shared helpers

const std::string k_config = daemon_config("\"store:t\"");

// Starts three children (two ways), then waits for each: 10 + 20 + 30. The
// first wait (step 3) takes 0.4 s, so all three starts are journaled by then.
constexpr const char* k_parent = R"(
local workflow, process = require("workflow"), require("process")
local ids = {}
ids[1] = assert(workflow.start("child.lua", 1))
ids[2] = assert(process.spawn("child.lua", 2))
ids[3] = assert(workflow.start("child.lua", 3))
local sum = 0
for _, id in ipairs(ids) do sum = sum + assert(workflow.wait(id)) end
return sum, ids[1]
)";

constexpr const char* k_child = R"(
local store, time = require("store"), require("time")
local n = ...
store.incr("child" .. n, 1)
time.sleep(0.4)
return n * 10
)";

std::string spawn_durable(daemon_process& d, const std::string& script) {
  line_client c(d.socket());
  json::value r = c.call("spawn", {{"script", script}, {"durable", true}});
  REQUIRE_MESSAGE(result_of(r).is_object(), text(r));
  return std::string(result_of(r).at("run").as_string());
}

}  // namespace

TEST_CASE("durable children: started once each and waited for, across SIGKILLs") {
  // Killed once when the first child exists, once when all three do.
  for (std::size_t kill_at : {2u, 4u}) {
    CAPTURE(kill_at);
    daemon_process d(k_config);
    REQUIRE_MESSAGE(d.started(), d.log_tail());
    write_file(d.dir() / "scripts" / "parent.lua", k_parent);
    write_file(d.dir() / "scripts" / "child.lua", k_child);
    std::string parent = spawn_durable(d, "parent.lua");
    REQUIRE(eventually([&] { return runs_of(d).size() >= kill_at; }));
    ::kill(d.pid(), SIGKILL);
    REQUIRE(eventually([&] { return !d.alive(); }));
    if (kill_at == 4) {
      // As if the crash came after the third child was recorded but before
      // the parent's step that started it: the replay starts it again, live.
      sqlite3* db = nullptr;
      REQUIRE(sqlite3_open((d.dir() / "data" / "luad.db").c_str(), &db) == SQLITE_OK);
      std::string sql = "DELETE FROM journal WHERE run = '" + parent + "' AND step >= 2";
      CHECK(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr) == SQLITE_OK);
      sqlite3_close(db);
    }
    d.start();
    REQUIRE_MESSAGE(d.started(), d.log_tail());
    REQUIRE_MESSAGE(eventually([&] { return all_in_state(d, 4, "completed"); }, 20s), d.log_tail());
    auto runs = runs_of(d);
    json::value results = runs.at(parent).at("detail").at("results");
    CHECK(results.at(0) == 60);
    // The children: ids named by the parent's run and step, each run once.
    std::string first(results.at(1).as_string());
    CHECK(first.starts_with("c-"));
    CHECK(runs.count(first) == 1);
    for (auto& [id, r] : runs) {
      if (id == parent) continue;
      CHECK(id.starts_with("c-"));
      CHECK(r.at("owner") == runs.at(parent).at("owner"));
    }
    for (int n = 1; n <= 3; ++n)
      CHECK(run_once(d, "return require('store').get('child" + std::to_string(n) + "')") == 1);
    // Each start and wait is a step of the parent's journal.
    line_client c(d.socket());
    json::value h = result_of(c.call("run_history", {{"run", parent}}));
    REQUIRE(h.is_object());
    CHECK(h.at("steps").as_array().size() == 6);
    CHECK(has(text(h.at("steps").at(0)), "\"start\""));
    CHECK(has(text(h.at("steps").at(3)), "\"wait\""));
  }
}

TEST_CASE("durable children: a failed child, a timeout, a chain, and what is refused") {
  daemon_process d(k_config);
  REQUIRE_MESSAGE(d.started(), d.log_tail());
  write_file(d.dir() / "scripts" / "bad.lua", "error({kind = 'invalid', message = 'no way'})");
  write_file(d.dir() / "scripts" / "slow.lua", "require('time').sleep(30)");
  write_file(d.dir() / "scripts" / "chain.lua", R"(
    local n = ...
    require("time").sleep(0.05)
    if n < 3 then require("workflow").continue_as_new(n + 1) end
    return "end of chain", n)");
  write_file(d.dir() / "scripts" / "parent.lua", R"(
    local workflow, process = require("workflow"), require("process")
    local out = {}
    local bad = assert(workflow.start("bad.lua"))
    local _, err = workflow.wait(bad)
    out.failed = err.kind .. ": " .. err.message
    local slow = assert(workflow.start("slow.lua"))
    local _, late = workflow.wait(slow, 0.2)
    out.timeout = late.kind
    local what, n = workflow.wait(assert(workflow.start("chain.lua", 1)))
    out.chain = what .. " " .. n
    local _, missing = workflow.start("nowhere.lua")
    out.missing = missing and missing.kind
    local _, outside = workflow.start("../../etc/passwd")
    out.outside = outside and outside.kind
    local _, linked = process.spawn_link("slow.lua")
    out.link = linked.message
    local _, unknown = workflow.wait("r-0000000000000000")
    out.unknown = unknown.kind
    return out)");
  std::string parent = spawn_durable(d, "parent.lua");
  REQUIRE_MESSAGE(eventually(
                      [&] {
                        auto runs = runs_of(d);
                        return runs.count(parent) && runs.at(parent).at("state") == "completed";
                      },
                      20s),
                  d.log_tail());
  json::value out = runs_of(d).at(parent).at("detail").at("results").at(0);
  INFO(text(out));
  CHECK(has(std::string(out.at("failed").as_string()), "invalid: run c-"));
  CHECK(has(std::string(out.at("failed").as_string()), "failed: no way"));
  CHECK(out.at("timeout") == "timeout");
  CHECK(out.at("chain") == "end of chain 3");
  CHECK(out.at("missing") == "not_found");
  CHECK(out.at("outside") == "permission_denied");
  CHECK(has(std::string(out.at("link").as_string()), "not in a durable run"));
  CHECK(out.at("unknown") == "not_found");
  // Outside a durable run: refused, with a word.
  line_client c(d.socket());
  json::value plain = c.call(
      "spawn", {{"source", "return require('workflow').start('x.lua')"}, {"wait", true}}, 10s);
  INFO(text(plain));
  CHECK(has(text(plain), "children are for durable runs only"));
}

TEST_CASE("durable children: a run may not wait for another owner's run") {
  daemon_process d(k_config);
  REQUIRE_MESSAGE(d.started(), d.log_tail());
  write_file(d.dir() / "scripts" / "slow.lua", "require('time').sleep(30)");
  std::string root_run = spawn_durable(d, "slow.lua");
  line_client c(d.socket());
  json::value r = c.call("spawn",
                         {{"source", "local _, e = require('workflow').wait('" + root_run +
                                         "') return e.kind, e.message"},
                          {"durable", true},
                          {"as_uid", 65534},
                          {"wait", true}},
                         10s);
  INFO(text(r));
  CHECK(has(text(r), "permission_denied"));
  CHECK(has(text(r), "belongs to another owner"));
}
