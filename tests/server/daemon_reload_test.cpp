// Hot code loading in the daemon, over the real socket and real files: new
// processes get changed scripts and packages, running ones keep their code,
// reload = "restart" workflows restart on new code (not on code that does not
// compile), process.on_upgrade, `luad reload PATH`, bursts of changes.
#include <doctest/doctest.h>

#include <chrono>
#include <cstdint>
#include <string>

#include "tests/server/daemon_support.hpp"

using namespace luad_test;

namespace {

json::value spawn_script(client& c, const std::string& script) {
  return c.call("spawn", {{"script", script}, {"wait", true}});
}

// The results of a spawn with wait (or the whole reply, so a failed CHECK shows it).
json::value results_of(const json::value& reply) {
  json::value r = get(reply, "/result/results");
  return r.is_array() ? r : reply;
}

json::value store_get(client& c, const std::string& key) {
  return results_of(
      c.call("spawn", {{"source", "return require('store').get('" + key + "')"}, {"wait", true}}));
}

// A counter of stats.code ("file_changes", "workflow_rollbacks", ...).
std::int64_t code_stat(client& c, const std::string& name) {
  json::value v = get(c.call("stats"), "/result/code/" + name);
  REQUIRE(v.is_number());
  return v.to_number<std::int64_t>();
}

}  // namespace

TEST_CASE("hot reload: new processes run changed scripts and packages; running ones keep theirs") {
  running_daemon d("", {{"scripts/lib.lua", "return {v = 1}\n"},
                        {"scripts/uses.lua", "return require('lib').v\n"},
                        {"scripts/hold.lua",
                         "local v = require('lib').v\nrequire('process').receive('go')\n"
                         "return v, require('lib').v\n"}});
  client c(d.socket);
  CHECK(results_of(spawn_script(c, "uses.lua")) == json::array{1});
  std::string pid = pid_of(c.call("spawn", {{"script", "hold.lua"}}));
  REQUIRE(eventually([&] {
    return get(c.call("info", {{"pid", pid}}), "/result/waiting_on") == "message";
  }));
  d.write("scripts/lib.lua", "return {v = 2}\n");
  CHECK(eventually([&] { return results_of(spawn_script(c, "uses.lua")) == json::array{2}; }));
  // The process that was running keeps the package it loaded (its cache).
  CHECK(get(c.call("send", {{"to", pid}, {"topic", "go"}}), "/result") == true);
  CHECK(results_of(c.call("wait", {{"pid", pid}})) == json::array{1, 1});
  d.write("scripts/uses.lua", "return 'v' .. require('lib').v\n");
  CHECK(eventually([&] { return results_of(spawn_script(c, "uses.lua")) == json::array{"v2"}; }));
  // Deleted: a clear error for new spawns; the daemon goes on.
  fs::remove(d.dir / "scripts" / "uses.lua");
  json::value gone;
  CHECK(eventually([&] {
    gone = spawn_script(c, "uses.lua");
    return code_of(gone) == -32004;
  }));
  CHECK(has(message_of(gone), "no script 'uses.lua'"));
  json::value stats = c.call("stats");
  CHECK(get(stats, "/result/code/watching") == "inotify");
  CHECK(get(stats, "/result/code/cache_hits").is_number());
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
  REQUIRE(eventually([&] { return store_get(c, "version") == json::array{1}; }));
  std::string first = supervisor_of(c.call("workflows"), "w");
  REQUIRE(!first.empty());
  d.write("scripts/wlib.lua", "return {version = 2}\n");  // a package it required
  CHECK(eventually([&] { return store_get(c, "version") == json::array{2}; }));
  CHECK(store_get(c, "canceled_1") == json::array{"code reload"});  // the old one finished
  std::string second = supervisor_of(c.call("workflows"), "w");
  CHECK(second != first);
  CHECK_FALSE(second.empty());

  // Code that does not compile: reported, and the old code keeps running.
  d.write("scripts/wlib.lua", "return {version = \n");
  json::object listed;
  CHECK(eventually([&] {
    listed = workflow_in(c.call("workflows"), "w");
    return listed.contains("code_error");
  }));
  CHECK(has(text(listed["code_error"]), "wlib.lua:2"));
  CHECK(text(listed["supervisor"]) == second);
  CHECK(store_get(c, "version") == json::array{2});
  CHECK(code_stat(c, "workflow_code_errors") == 1);
  auto cli = parse(luad_cli(d.socket, "workflows --json").out);
  CHECK(get(cli, "/0/code_error") == listed["code_error"]);

  // Code that fails at once: the workflow goes back to the code it ran before
  // (pinned: its processes load the old wlib), says so, and stays there when
  // unrelated files change; the daemon is fine.
  c.call("spawn", {{"source", "require('store').set('version', 0)"}, {"wait", true}});
  d.write("scripts/wlib.lua", "error('broken on purpose')\n");
  CHECK(eventually([&] {
    listed = workflow_in(c.call("workflows"), "w");
    return listed["code"] == "previous";
  }));
  CHECK(has(text(listed["code_error"]), "broken on purpose"));
  CHECK(has(text(listed["code_error"]), "running the previous code"));
  CHECK(eventually([&] { return store_get(c, "version") == json::array{2}; }));
  CHECK(code_stat(c, "workflow_rollbacks") == 1);
  CHECK(has(luad_cli(d.socket, "workflows").out, "code: the new code failed"));
  std::string pinned = text(listed["supervisor"]);
  d.write("scripts/unrelated.lua", "return 1\n");
  json::value r = c.call("reload", {{"path", (d.dir / "scripts/unrelated.lua").string()}});
  CHECK(get(r, "/result/code/restarting") == json::array{});
  listed = workflow_in(c.call("workflows"), "w");
  CHECK(text(listed["supervisor"]) == pinned);
  CHECK(listed["code"] == "previous");
  CHECK(get(c.call("ping"), "/result") == "pong");
  // Fixing the file brings the workflow onto the files again.
  d.write("scripts/wlib.lua", "return {version = 3}\n");
  CHECK(eventually([&] { return store_get(c, "version") == json::array{3}; }));
  CHECK(eventually([&] {
    listed = workflow_in(c.call("workflows"), "w");
    return !listed.contains("code_error") && !listed.contains("code");
  }));
  // A touch, or a reload by hand with nothing changed, restarts nothing. A
  // restart starts with a CANCEL to the workflow's worker, parked in
  // receive('CANCEL'), inside the same step that counts the change in
  // stats.code.file_changes. So once the watcher's batch for the touch is
  // counted (the reload by hand counts one more), a worker still parked
  // proves that nothing restarted, not merely that nothing has restarted yet.
  std::string parked;
  REQUIRE(eventually([&] {
    parked.clear();
    json::value procs = get(c.call("list", {{"workflow", "w"}}), "/result");
    for (const auto& p : procs.as_array())
      if (text(get(p, "/script")).ends_with("/w.lua")) parked = text(get(p, "/pid"));
    return !parked.empty() &&
           get(c.call("info", {{"pid", parked}}), "/result/waiting_on") == "message";
  }));
  std::string now = supervisor_of(c.call("workflows"), "w");
  std::int64_t changes = code_stat(c, "file_changes");
  std::int64_t restarts = code_stat(c, "workflow_restarts");
  d.write("scripts/wlib.lua", "return {version = 3}\n");
  r = c.call("reload");
  CHECK(get(r, "/result/code/restarting") == json::array{});
  CHECK(get(r, "/result/code/not_compiling") == json::array{});
  CHECK(eventually([&] { return code_stat(c, "file_changes") >= changes + 2; }));
  CHECK(get(c.call("info", {{"pid", parked}}), "/result/waiting_on") == "message");
  CHECK(supervisor_of(c.call("workflows"), "w") == now);
  CHECK(code_stat(c, "workflow_restarts") == restarts);
}

TEST_CASE("hot reload: with reload_trial = 0 failing new code is left to the supervisor") {
  std::string extra =
      "[[workflow]]\nname = \"w\"\nscript = \"scripts/w.lua\"\nreload = \"restart\"\n"
      "reload_trial = 0\npermissions = [\"store:t\"]\nbackoff = 0.05\nintensity = 100\n";
  running_daemon d(extra, {{"scripts/w.lua",
                            "require('store').set('v', 1)\n"
                            "require('process').receive('CANCEL')\n"}});
  client c(d.socket);
  REQUIRE(eventually([&] { return store_get(c, "v") == json::array{1}; }));
  std::string first = supervisor_of(c.call("workflows"), "w");
  d.write("scripts/w.lua", "require('store').set('v', 2)\nerror('fails after its write')\n");
  CHECK(eventually([&] { return store_get(c, "v") == json::array{2}; }));
  // The new code has failed, and the supervisor has restarted it and seen it
  // fail again: a rollback would have happened by now.
  CHECK(eventually([&] {
    return get(c.call("stats"), "/result/processes/exits/error").to_number<std::int64_t>() >= 2;
  }));
  json::object listed = workflow_in(c.call("workflows"), "w");
  CHECK(text(listed["supervisor"]) != first);
  CHECK_FALSE(listed.contains("code"));
  CHECK_FALSE(listed.contains("code_error"));
  CHECK(code_stat(c, "workflow_rollbacks") == 0);
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
  REQUIRE(eventually([&] { return store_get(c, "w") == json::array{1}; }));
  auto restarting = [&](const std::string& file) {
    return get(c.call("reload", {{"path", (d.dir / file).string()}}), "/result/code/restarting");
  };
  // The script rewritten with the same content (what ran is known: the
  // bytecode matches) and another file changed: neither restarts it.
  d.write("scripts/w.lua",
          "require('store').set('w', require('wl').v)\n"
          "require('process').receive('CANCEL')\n");
  CHECK(restarting("scripts/w.lua") == json::array{});
  d.write("scripts/other.lua", "return 2\n");
  CHECK(restarting("scripts/other.lua") == json::array{});
  d.write("scripts/wl.lua", "return {v = 2}\n");
  CHECK(restarting("scripts/wl.lua") == json::array{"w"});
  CHECK(eventually([&] { return store_get(c, "w") == json::array{2}; }));
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
  std::string pid = pid_of(c.call("spawn", {{"script", "up.lua"}}));
  REQUIRE(eventually([&] {
    return get(c.call("info", {{"pid", pid}}), "/result/waiting_on") == "message";
  }));
  d.write("scripts/pkg.lua", "return {v = 2}\n");
  json::value r = c.call("wait", {{"pid", pid}});
  CHECK(get(r, "/result/reason") == "normal");
  CHECK(get(r, "/result/results/0") == 1);
  CHECK(get(r, "/result/results/1") == 2);
  CHECK(text(get(r, "/result/results/2")).ends_with("/scripts/pkg.lua"));
}

TEST_CASE("hot reload: luad reload PATH forces a change when watching is off") {
  running_daemon d("", {{"scripts/v.lua", "return 1\n"}}, "", "watch = false\n");
  client c(d.socket);
  CHECK(get(c.call("stats"), "/result/code/watching") == "off");
  CHECK(results_of(spawn_script(c, "v.lua")) == json::array{1});
  d.write("scripts/v.lua", "return 2\n");
  auto r = luad_cli(d.socket, "reload " + (d.dir / "scripts" / "v.lua").string());
  CHECK(r.code == 0);
  CHECK(has(r.out, "code restarting:"));
  CHECK(results_of(spawn_script(c, "v.lua")) == json::array{2});  // at once, no recheck wait
  r = luad_cli(d.socket, "reload");
  CHECK(r.code == 0);
  CHECK(has(r.out, "unchanged:"));
}

TEST_CASE("hot reload: 10,000 changes in a second are coalesced; the last content wins") {
  running_daemon d("", {{"scripts/burst.lua", "return 0\n"}});
  client c(d.socket);
  CHECK(results_of(spawn_script(c, "burst.lua")) == json::array{0});
  auto start = std::chrono::steady_clock::now();
  for (int i = 1; i <= 10000; ++i)
    d.write("scripts/burst.lua", "return " + std::to_string(i) + "\n");
  MESSAGE("10,000 writes took "
          << std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count()
          << " s");
  CHECK(eventually([&] { return results_of(spawn_script(c, "burst.lua")) == json::array{10000}; }));
  std::int64_t changes = code_stat(c, "file_changes");
  MESSAGE("change batches: " << changes);
  CHECK(changes >= 1);
  CHECK(changes < 200);
}
