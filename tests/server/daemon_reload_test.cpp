// Hot code loading in the daemon, over the real socket and real files: new
// processes get changed scripts and packages, running ones keep their code,
// reload = "restart" workflows restart on new code (not on code that does not
// compile), process.on_upgrade, `luad reload PATH`, bursts of changes.
#include <doctest/doctest.h>

#include <chrono>

#include "tests/server/daemon_support.hpp"

using namespace luad_test;

namespace {

std::string spawn_script(client& c, const std::string& script) {
  return c.call(R"({"id":1,"method":"spawn","params":{"script":")" + script + R"(","wait":true}})");
}

std::string store_get(client& c, const std::string& key) {
  return c.call(R"J({"id":2,"method":"spawn","params":{"source":"return require('store').get(')J" +
                key + R"J(')","wait":true}})J");
}

// The supervisor pid of workflow `name` in a `workflows` reply.
std::string supervisor_of(const std::string& list, const std::string& name) {
  auto at = list.find(R"("name":")" + name + "\"");
  auto s = list.find(R"("supervisor":")", at);
  return s == std::string::npos ? std::string()
                                : list.substr(s + 14, list.find('"', s + 14) - s - 14);
}

}  // namespace

TEST_CASE("hot reload: new processes run changed scripts and packages; running ones keep theirs") {
  running_daemon d("", {{"scripts/lib.lua", "return {v = 1}\n"},
                        {"scripts/uses.lua", "return require('lib').v\n"},
                        {"scripts/hold.lua",
                         "local v = require('lib').v\nrequire('process').receive('go')\n"
                         "return v, require('lib').v\n"}});
  client c(d.socket);
  CHECK(has(spawn_script(c, "uses.lua"), R"("results":[1])"));
  std::string r = c.call(R"({"id":3,"method":"spawn","params":{"script":"hold.lua"}})");
  std::string pid = pid_of(r);
  REQUIRE(eventually([&] {
    return has(c.call(R"({"id":4,"method":"info","params":{"pid":")" + pid + R"("}})"),
               "waiting_on");
  }));
  d.write("scripts/lib.lua", "return {v = 2}\n");
  CHECK(eventually([&] { return has(spawn_script(c, "uses.lua"), R"("results":[2])"); }));
  // The process that was running keeps the package it loaded (its cache).
  c.call(R"({"id":5,"method":"send","params":{"to":")" + pid + R"(","topic":"go"}})");
  CHECK(has(c.call(R"({"id":6,"method":"wait","params":{"pid":")" + pid + R"("}})"),
            R"("results":[1,1])"));
  d.write("scripts/uses.lua", "return 'v' .. require('lib').v\n");
  CHECK(eventually([&] { return has(spawn_script(c, "uses.lua"), R"("results":["v2"])"); }));
  // Deleted: a clear error for new spawns; the daemon goes on.
  fs::remove(d.dir / "scripts" / "uses.lua");
  CHECK(eventually([&] { return has(spawn_script(c, "uses.lua"), "no script 'uses.lua'"); }));
  std::string stats = c.call(R"({"id":7,"method":"stats"})");
  CHECK(has(stats, R"("watching":"inotify")"));
  CHECK(has(stats, R"("cache_hits":)"));
}

TEST_CASE("hot reload: a reload = restart workflow restarts on new code, after CANCEL") {
  std::string extra =
      "[[workflow]]\nname = \"w\"\nscript = \"scripts/w.lua\"\nreload = \"restart\"\n"
      "permissions = [\"store:t\"]\nbackoff = 0.05\nintensity = 100\n";
  std::string w =
      "local store = require('store')\nlocal lib = require('wlib')\n"
      "store.set('version', lib.version)\n"
      "local m = require('process').receive('CANCEL')\n"
      "store.set('canceled_' .. lib.version, m.payload.reason)\n";
  running_daemon d(extra, {{"scripts/w.lua", w}, {"scripts/wlib.lua", "return {version = 1}\n"}});
  client c(d.socket);
  REQUIRE(eventually([&] { return has(store_get(c, "version"), R"("results":[1])"); }));
  std::string first = supervisor_of(c.call(R"({"id":1,"method":"workflows"})"), "w");
  REQUIRE(!first.empty());
  d.write("scripts/wlib.lua", "return {version = 2}\n");  // a package it required
  CHECK(eventually([&] { return has(store_get(c, "version"), R"("results":[2])"); }));
  CHECK(has(store_get(c, "canceled_1"), R"("results":["code reload"])"));  // the old one finished
  std::string second = supervisor_of(c.call(R"({"id":1,"method":"workflows"})"), "w");
  CHECK(second != first);

  // Code that does not compile: reported, and the old code keeps running.
  d.write("scripts/wlib.lua", "return {version = \n");
  std::string list;
  CHECK(eventually([&] {
    list = c.call(R"({"id":1,"method":"workflows"})");
    return has(list, R"("code_error":")");
  }));
  CHECK(has(list, "wlib.lua:2"));
  CHECK(supervisor_of(list, "w") == second);
  CHECK(has(store_get(c, "version"), R"("results":[2])"));
  CHECK(has(c.call(R"({"id":1,"method":"stats"})"), R"("workflow_code_errors":1)"));
  auto cli = luad_cli(d.socket, "workflows --json");
  CHECK(has(cli.out, "code_error"));

  // Code that fails at once: the workflow goes back to the code it ran before
  // (pinned: its processes load the old wlib), says so, and stays there when
  // unrelated files change; the daemon is fine.
  c.call(
      R"J({"id":1,"method":"spawn","params":{"source":"require('store').set('version', 0)","wait":true}})J");
  d.write("scripts/wlib.lua", "error('broken on purpose')\n");
  CHECK(eventually([&] {
    list = c.call(R"({"id":1,"method":"workflows"})");
    return has(list, R"("code":"previous")");
  }));
  CHECK(has(list, "broken on purpose"));
  CHECK(has(list, "running the previous code"));
  CHECK(eventually([&] { return has(store_get(c, "version"), R"("results":[2])"); }));
  CHECK(has(c.call(R"({"id":1,"method":"stats"})"), R"("workflow_rollbacks":1)"));
  CHECK(has(luad_cli(d.socket, "workflows").out, "code: the new code failed"));
  std::string pinned = supervisor_of(list, "w");
  d.write("scripts/unrelated.lua", "return 1\n");
  c.call(R"({"id":1,"method":"reload","params":{"path":")" +
         (d.dir / "scripts/unrelated.lua").string() + "\"}}");
  list = c.call(R"({"id":1,"method":"workflows"})");
  CHECK(supervisor_of(list, "w") == pinned);
  CHECK(has(list, R"("code":"previous")"));
  CHECK(has(c.call(R"({"id":1,"method":"ping"})"), "pong"));
  // Fixing the file brings the workflow onto the files again.
  d.write("scripts/wlib.lua", "return {version = 3}\n");
  CHECK(eventually([&] { return has(store_get(c, "version"), R"("results":[3])"); }));
  CHECK(eventually([&] {
    list = c.call(R"({"id":1,"method":"workflows"})");
    return !has(list, "code_error") && !has(list, R"("code":"previous")");
  }));
  // A touch, or a reload by hand with nothing changed, restarts nothing.
  std::string now = supervisor_of(c.call(R"({"id":1,"method":"workflows"})"), "w");
  d.write("scripts/wlib.lua", "return {version = 3}\n");
  CHECK(has(c.call(R"({"id":1,"method":"reload"})"), R"("restarting":[])"));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // past the watcher's batch
  CHECK(supervisor_of(c.call(R"({"id":1,"method":"workflows"})"), "w") == now);
}

TEST_CASE("hot reload: with reload_trial = 0 failing new code is left to the supervisor") {
  std::string extra =
      "[[workflow]]\nname = \"w\"\nscript = \"scripts/w.lua\"\nreload = \"restart\"\n"
      "reload_trial = 0\npermissions = [\"store:t\"]\nbackoff = 0.05\nintensity = 100\n";
  running_daemon d(extra, {{"scripts/w.lua",
                            "require('store').set('v', 1)\n"
                            "require('process').receive('CANCEL')\n"}});
  client c(d.socket);
  REQUIRE(eventually([&] { return has(store_get(c, "v"), R"("results":[1])"); }));
  std::string first = supervisor_of(c.call(R"({"id":1,"method":"workflows"})"), "w");
  d.write("scripts/w.lua", "require('store').set('v', 2)\nerror('fails after its write')\n");
  CHECK(eventually([&] { return has(store_get(c, "v"), R"("results":[2])"); }));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // restarts with backoff
  std::string list = c.call(R"({"id":1,"method":"workflows"})");
  CHECK(supervisor_of(list, "w") != first);
  CHECK_FALSE(has(list, "previous"));
  CHECK(has(c.call(R"({"id":1,"method":"stats"})"), R"("workflow_rollbacks":0)"));
}

TEST_CASE("hot reload: without a cache (cache_size = 0) only new content restarts a workflow") {
  std::string extra =
      "[[workflow]]\nname = \"w\"\nscript = \"scripts/w.lua\"\nreload = \"restart\"\n"
      "permissions = [\"store:t\"]\n";
  running_daemon d(extra,
                   {{"scripts/w.lua",
                     "require('store').set('w', require('wl').v)\n"
                     "require('process').receive('CANCEL')\n"},
                    {"scripts/wl.lua", "return {v = 1}\n"}},
                   "", "watch = false\ncache_size = 0\n");
  client c(d.socket);
  REQUIRE(eventually([&] { return has(store_get(c, "w"), R"("results":[1])"); }));
  auto reload = [&](const std::string& file) {
    return c.call(R"({"id":1,"method":"reload","params":{"path":")" + (d.dir / file).string() +
                  "\"}}");
  };
  // The script rewritten with the same content (what ran is known: the
  // bytecode matches) and another file changed: neither restarts it.
  d.write("scripts/w.lua",
          "require('store').set('w', require('wl').v)\n"
          "require('process').receive('CANCEL')\n");
  CHECK(has(reload("scripts/w.lua"), R"("restarting":[])"));
  d.write("scripts/other.lua", "return 2\n");
  CHECK(has(reload("scripts/other.lua"), R"("restarting":[])"));
  d.write("scripts/wl.lua", "return {v = 2}\n");
  CHECK(has(reload("scripts/wl.lua"), R"("restarting":["w"])"));
  CHECK(eventually([&] { return has(store_get(c, "w"), R"("results":[2])"); }));
}

TEST_CASE("hot reload: process.on_upgrade gets UPGRADE and process.unload re-requires") {
  running_daemon d("", {{"scripts/pkg.lua", "return {v = 1}\n"},
                        {"scripts/up.lua",
                         "local process = require('process')\nlocal before = require('pkg').v\n"
                         "assert(process.on_upgrade(true) == false)\n"
                         "process.register('upgrader')\n"
                         "local m = process.receive('UPGRADE')\n"
                         "assert(process.unload('pkg'))\nassert(not process.unload('time'))\n"
                         "return before, require('pkg').v, m.payload.files[1]\n"}});
  client c(d.socket);
  std::string r = c.call(R"({"id":1,"method":"spawn","params":{"script":"up.lua"}})");
  std::string pid = pid_of(r);
  REQUIRE(eventually([&] {
    return has(c.call(R"({"id":2,"method":"info","params":{"pid":")" + pid + R"("}})"),
               "waiting_on");
  }));
  d.write("scripts/pkg.lua", "return {v = 2}\n");
  r = c.call(R"({"id":3,"method":"wait","params":{"pid":")" + pid + R"("}})");
  CHECK(has(r, R"("results":[1,2,")"));
  CHECK(has(r, "pkg.lua\"]"));
}

TEST_CASE("hot reload: luad reload PATH forces a change when watching is off") {
  running_daemon d("", {{"scripts/v.lua", "return 1\n"}}, "", "watch = false\n");
  client c(d.socket);
  CHECK(has(c.call(R"({"id":1,"method":"stats"})"), R"("watching":"off")"));
  CHECK(has(spawn_script(c, "v.lua"), R"("results":[1])"));
  d.write("scripts/v.lua", "return 2\n");
  auto r = luad_cli(d.socket, "reload " + (d.dir / "scripts" / "v.lua").string());
  CHECK(r.code == 0);
  CHECK(has(r.out, "code restarting:"));
  CHECK(has(spawn_script(c, "v.lua"), R"("results":[2])"));  // at once, no recheck wait
  r = luad_cli(d.socket, "reload");
  CHECK(r.code == 0);
  CHECK(has(r.out, "unchanged:"));
}

TEST_CASE("hot reload: 10,000 changes in a second are coalesced; the last content wins") {
  running_daemon d("", {{"scripts/burst.lua", "return 0\n"}});
  client c(d.socket);
  CHECK(has(spawn_script(c, "burst.lua"), R"("results":[0])"));
  auto start = std::chrono::steady_clock::now();
  for (int i = 1; i <= 10000; ++i)
    d.write("scripts/burst.lua", "return " + std::to_string(i) + "\n");
  MESSAGE("10,000 writes took "
          << std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count()
          << " s");
  CHECK(eventually([&] { return has(spawn_script(c, "burst.lua"), R"("results":[10000])"); }));
  std::string stats = c.call(R"({"id":1,"method":"stats"})");
  auto at = stats.find(R"("file_changes":)");
  REQUIRE(at != std::string::npos);
  long changes = std::stol(stats.substr(at + 15));
  MESSAGE("change batches: " << changes);
  CHECK(changes >= 1);
  CHECK(changes < 200);
}
