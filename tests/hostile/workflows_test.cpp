// Hostile: a workflow's supervisor fed malformed messages (over the socket and
// from its own child, a sender no owner rule refuses), and workflows that fail
// must be seen: in the log, rate-limited, and in `luad workflows`.
#include <doctest/doctest.h>
#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/spdlog.h>

#include <memory>
#include <string>
#include <vector>

#include "runtime/logging.hpp"
#include "tests/server/daemon_support.hpp"

namespace luad_test {

namespace {

// Every line of `warn` and above the daemon logs while it lives (the "luad"
// logger's last 4,096), whatever level the tests run the logger at.
struct captured_log {
  std::shared_ptr<spdlog::sinks::ringbuffer_sink_mt> sink =
      std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(4096);
  spdlog::level::level_enum was = luad::runtime::logger().level();
  captured_log() {
    auto& l = luad::runtime::logger();
    for (auto& s : l.sinks()) s->set_level(was);  // the others stay as quiet as before
    l.sinks().push_back(sink);
    l.set_level(spdlog::level::warn);
  }
  ~captured_log() {
    auto& l = luad::runtime::logger();
    std::erase(l.sinks(), std::static_pointer_cast<spdlog::sinks::sink>(sink));
    l.set_level(was);
  }
  captured_log(const captured_log&) = delete;
  captured_log& operator=(const captured_log&) = delete;
  // Lines containing `part`.
  std::vector<std::string> with(std::string_view part) const {
    std::vector<std::string> out;
    for (std::string& l : sink->last_formatted())
      if (has(l, part)) out.push_back(std::move(l));
    return out;
  }
};

// The pids of workflow `name`'s processes other than its supervisor.
std::vector<std::string> children_of(client& c, const std::string& name,
                                     const std::string& supervisor) {
  std::vector<std::string> pids;
  json::value r = c.call("list", {{"workflow", name}});
  json::value list = get(r, "/result");
  for (const auto& p : list.as_array()) {
    std::string pid = text(get(p, "/pid"));
    if (pid != supervisor) pids.push_back(pid);
  }
  return pids;
}

// The "dropped a message" lines a process logged, from its backlog.
std::size_t drops_logged(client& c, const std::string& pid) {
  json::value sub = c.call("subscribe", {{"pid", pid}, {"level", "debug"}});
  std::size_t n = 0;
  json::value backlog = get(sub, "/result/backlog");
  if (backlog.is_array())
    for (const auto& line : backlog.as_array())
      if (has(text(get(line, "/message")), "supervisor: dropped a message")) ++n;
  // Live lines may come between the subscription and its end (the supervisor
  // may still be dropping): they count too, and are not the reply.
  std::int64_t id = c.request("unsubscribe", {{"pid", pid}});
  for (json::value v = c.next(); get(v, "/id") != id; v = c.next())
    if (has(text(get(v, "/params/message")), "supervisor: dropped a message")) ++n;
  return n;
}

const char* const k_waiter = "require('process').receive('never')\n";

}  // namespace

TEST_CASE("hostile: malformed messages to a workflow supervisor are dropped, never a crash") {
  running_daemon d("[[workflow]]\nname = \"victim\"\nscript = \"scripts/victim.lua\"\n",
                   {{"scripts/victim.lua", k_waiter}});
  client c(d.socket);
  std::string sup;
  REQUIRE(eventually([&] {
    sup = supervisor_of(c.call("workflows"), "victim");
    return !sup.empty() && children_of(c, "victim", sup).size() == 1;
  }));
  std::string child = children_of(c, "victim", sup).front();
  // Every kind it accepts, with wrong shapes, types and values. "restart" is
  // for its own timers only; EXIT only from a child that really ended.
  std::vector<std::pair<std::string, json::value>> junk;
  auto add = [&](std::string topic, json::value payload) {
    junk.emplace_back(std::move(topic), std::move(payload));
  };
  add("restart", 99);
  add("restart", 1);
  add("restart", 0);
  add("restart", -1);
  add("restart", 1.5);
  add("restart", 1e308);
  add("restart", 9223372036854775807LL);
  add("restart", "1");
  add("restart", nullptr);
  add("restart", true);
  add("restart", json::array{1});
  add("restart", json::parse(R"({"a":{"b":{"c":[[[[1]]]]}}})"));
  add("EXIT", 99);
  add("EXIT", "error");
  add("EXIT", json::object{});
  add("EXIT", json::object{{"reason", 5}});
  add("EXIT", json::object{{"reason", "error"}, {"message", "forged"}});
  add("which_children", json::array{1, 2, 3});
  add("which_children", json::string(3000, 'x'));
  add("children", nullptr);
  add("nonsense", json::object{{"x", 1}});
  add(std::string(256, 't'), 1);
  for (const auto& [topic, payload] : junk) {
    json::value r = c.call("send", {{"to", sup}, {"topic", topic}, {"payload", payload}});
    INFO("topic " << topic << " payload " << payload);
    CHECK(get(r, "/result") == true);
  }
  // It answers after all of them, with its child untouched and no restart.
  json::value w;
  REQUIRE(eventually([&] {
    w = c.call("workflows");
    return drops_logged(c, sup) > 0;
  }));
  json::object victim = workflow_in(w, "victim");
  CHECK(victim["state"] == "running");
  CHECK(supervisor_of(w, "victim") == sup);
  CHECK(victim["restarts"] == 0);
  CHECK(children_of(c, "victim", sup) == std::vector<std::string>{child});
  // Dropped lines are rate-limited: 21 bad messages, at most a burst logged.
  CHECK(drops_logged(c, sup) <= 6);
}

TEST_CASE("hostile: a workflow's own child forges EXIT and restart to its supervisor") {
  // The child is the one sender every owner rule lets through. It sends its
  // supervisor garbage, a forged EXIT for itself and bogus restarts, then
  // asks which_children and reports what it saw.
  const char* attacker = R"(
local process = require("process")
local log = require("log")
local m = process.receive("target")
local sup = m.payload
local me = process.self()
local huge = string.rep("x", 1 << 20)
local nested = {}
local t = nested
for _ = 1, 150 do t.x = {}; t = t.x end
for _, p in ipairs({ 99, -1, 0, 1, 2^53, 1/0, "1", huge, nested, { 1 }, true, me }) do
  process.send(sup, "restart", p)
end
for _, p in ipairs({ { reason = "error", message = "forged" }, { reason = "normal" }, 7, huge,
                     nested, { reason = { "x" } }, me }) do
  process.send(sup, "EXIT", p)
end
process.send(sup, "which_children", nested)
process.send(sup, "unknown", huge)
process.send(sup, "which_children")
local r = process.receive("children", 5)
local kids = r and r.payload or {}
log.info("attacker saw", { n = #kids, same = kids[1] and kids[1].pid == me or false })
process.receive("never")
)";
  running_daemon d("[[workflow]]\nname = \"self\"\nscript = \"scripts/attacker.lua\"\n",
                   {{"scripts/attacker.lua", attacker}});
  client c(d.socket);
  std::string sup;
  REQUIRE(eventually([&] {
    sup = supervisor_of(c.call("workflows"), "self");
    return !sup.empty() && children_of(c, "self", sup).size() == 1;
  }));
  std::string child = children_of(c, "self", sup).front();
  REQUIRE(get(c.call("send", {{"to", child}, {"topic", "target"}, {"payload", sup}}), "/result") ==
          true);
  // The child's report: its supervisor still lists it (the forged EXIT was
  // not believed), and nothing was restarted or started twice.
  std::string fields;
  REQUIRE(eventually([&] {
    json::value sub = c.call("subscribe", {{"pid", child}});
    // Log notifications of the subscription may come before the reply.
    std::int64_t un = c.request("unsubscribe", {{"pid", child}});
    while (get(c.next(), "/id") != json::value(un)) {
    }
    json::value backlog = get(sub, "/result/backlog");
    for (const auto& line : backlog.as_array())
      if (text(get(line, "/message")) == "attacker saw") fields = text(get(line, "/fields"));
    return !fields.empty();
  }));
  CHECK(has(fields, R"("n":1)"));
  CHECK(has(fields, R"("same":true)"));
  json::value w = c.call("workflows");
  CHECK(workflow_in(w, "self")["state"] == "running");
  CHECK(supervisor_of(w, "self") == sup);
  CHECK(workflow_in(w, "self")["restarts"] == 0);
  CHECK(children_of(c, "self", sup) == std::vector<std::string>{child});
}

TEST_CASE("hostile: a workflow that crashes at start is logged, gives up, and says why") {
  captured_log log;
  running_daemon d(
      "[[workflow]]\nname = \"crasher\"\nscript = \"scripts/crash.lua\"\n"
      "intensity = 2\nperiod = 60\nbackoff = 0.01\nbackoff_max = 0.01\n",
      {{"scripts/crash.lua", "error('boom at start')\n"}});
  client c(d.socket);
  json::object w;
  REQUIRE(eventually([&] {
    w = workflow_in(c.call("workflows"), "crasher");
    return w["state"] == "stopped";
  }));
  // `luad workflows`: the last exit, the restarts, and why the supervisor ended.
  CHECK(w["restarts"] == 2);
  CHECK(get(w, "/last_exit/reason") == "error");
  CHECK(get(w, "/last_exit/child") == "crasher");
  CHECK(has(text(get(w, "/last_exit/message")), "boom at start"));
  CHECK(get(w, "/supervisor_exit/reason") == "error");
  CHECK(has(text(get(w, "/supervisor_exit/message")), "supervisor gave up: 3 restarts"));
  CHECK(has(text(get(w, "/supervisor_exit/message")), "boom at start"));
  // The log: each failed process, and the supervisor giving up with the last exit.
  auto crashed = log.with("crash.lua, workflow crasher) ended: error (runtime)");
  CHECK(crashed.size() == 3);
  CHECK((crashed.empty() || has(crashed[0], "boom at start")));
  CHECK(log.with("supervisor gave up").size() >= 1);
  // The table people read.
  auto out = luad_cli(d.socket, "workflows").out;
  CHECK(has(out, "last exit: error (runtime): "));
  CHECK(has(out, "supervisor ended: error (runtime): supervisor gave up"));
}

TEST_CASE("hostile: classes = \"workflow\" confines the child, not its supervisor") {
  // The child may load log and json (workflow, deterministic), not time.
  running_daemon d(
      "[[workflow]]\nname = \"pure\"\nscript = \"scripts/pure.lua\"\nclasses = \"workflow\"\n"
      "restart = \"transient\"\n"
      "[[workflow]]\nname = \"clocked\"\nscript = \"scripts/clocked.lua\"\n"
      "classes = \"workflow\"\nintensity = 0\n",
      {{"scripts/pure.lua",
        "local log = require('log')\nlog.info('pure ran', { sum = "
        "require('json').decode('[1,2]')[2] })\nreturn 'done'\n"},
       {"scripts/clocked.lua", "local time = require('time')\ntime.sleep(10)\n"}});
  client c(d.socket);
  json::object pure, clocked;
  REQUIRE(eventually([&] {
    json::value r = c.call("workflows");
    pure = workflow_in(r, "pure");
    clocked = workflow_in(r, "clocked");
    return pure.contains("last_exit") && clocked["state"] == "stopped";
  }));
  // The child ran to its end under the workflow classes (before, its
  // supervisor could not load `process` and nothing ran at all).
  CHECK(get(pure, "/last_exit/reason") == "normal");
  CHECK(pure["restarts"] == 0);
  // The same classes refuse `time` to the child, and say so.
  CHECK(get(clocked, "/last_exit/reason") == "error");
  CHECK(has(text(get(clocked, "/last_exit/message")), "module 'time' is nondeterministic"));
}

}  // namespace luad_test
