// Scheduler: many processes, kills, preemption fairness, shutdown, class restriction.
#include <doctest/doctest.h>

#include <atomic>
#include <thread>

#include "runtime/process.hpp"
#include "tests/support.hpp"

using luad::runtime::exit_reason;
using luad::runtime::value;
using luad::test::run_lua;
using luad::test::shared_engine;
using luad::test::spawn_lua;

using luad::test::eventually;
using luad::test::wait_exit;

TEST_CASE("ten thousand processes run to completion with their own results") {
  auto& eng = shared_engine();
  auto code = luad::runtime::compile(
      "local n = ... local t = require('time') t.sleep(0) return n * 2", "x.lua");
  constexpr int n = 10000;
  std::atomic<int> done{0}, right{0};
  for (int i = 0; i < n; ++i) {
    luad::runtime::spawn_options o;
    o.args = {value(i)};
    o.on_exit = [&, i](const luad::runtime::exit_info& e) {
      if (e.reason == exit_reason::normal && e.results.at(0) == value(std::int64_t{2 * i})) right++;
      done++;
    };
    REQUIRE(eng.scheduler().spawn(code, std::move(o)).ok());
  }
  REQUIRE(eventually([&] { return done.load() == n; }, std::chrono::seconds(60)));
  CHECK(right.load() == n);
}

TEST_CASE("pids are unique, printable and parseable") {
  auto& eng = shared_engine();
  auto code = luad::runtime::compile("return 1", "x.lua");
  auto a = *eng.scheduler().spawn(code, {});
  auto b = *eng.scheduler().spawn(code, {});
  CHECK(a != b);
  auto parsed = luad::runtime::pid::parse(a.to_string());
  REQUIRE(parsed);
  CHECK(*parsed == a);
  CHECK_FALSE(luad::runtime::pid::parse("0."));
  CHECK_FALSE(luad::runtime::pid::parse("x.1"));
  CHECK_FALSE(luad::runtime::pid::parse("0.0"));
}

TEST_CASE("killing a sleeping process ends it at once with reason killed") {
  auto& eng = shared_engine();
  luad::runtime::pid id;
  auto fut = spawn_lua(eng, "require('time').sleep(3600) return 'woke'", {}, &id);
  REQUIRE(eventually([&] { return eng.clock().pending() >= 1; }));
  CHECK(eng.scheduler().kill(id));
  auto e = wait_exit(fut, std::chrono::seconds(5));
  CHECK(e.reason == exit_reason::killed);
  CHECK(e.err.kind == luad::runtime::error_kind::canceled);
  CHECK(e.err.message == "killed");
  // on_exit runs while the pid is still found (scheduler::retire), so "gone"
  // comes a moment after the exit.
  CHECK(eventually([&] { return !eng.scheduler().kill(id); }));
}

TEST_CASE("killing a busy loop lands within one instruction budget") {
  luad::server::engine eng(luad::runtime::scheduler_options::with_workers(1));
  luad::runtime::pid id;
  auto fut = spawn_lua(eng, "local n = 0 while true do n = n + 1 end", {}, &id);
  REQUIRE(eventually([&] { return eng.scheduler().stats().preemptions > 0; }));
  CHECK(eng.scheduler().kill(id));
  CHECK(wait_exit(fut, std::chrono::seconds(5)).reason == exit_reason::killed);
}

TEST_CASE("an infinite loop does not starve other processes on the same worker" *
          doctest::test_suite("serial")) {
  luad::server::engine eng(luad::runtime::scheduler_options::with_workers(1));
  auto hog = spawn_lua(eng, "while true do end");
  auto hog2 = spawn_lua(eng, "local t = {} while true do t[1] = 1 end");
  // Each sleep should end ~10 ms later; report the worst lateness in ms.
  auto probe = spawn_lua(eng, R"(
    local time = require("time")
    local worst = 0
    for i = 1, 20 do
      local t0 = time.monotonic()
      time.sleep(0.01)
      local late = (time.monotonic() - t0 - 0.01) * 1000
      if late > worst then worst = late end
    end
    return worst)");
  auto e = wait_exit(probe, std::chrono::seconds(30));
  REQUIRE(e.reason == exit_reason::normal);
  const double* worst = e.results.at(0).get<double>();
  REQUIRE(worst);
  MESSAGE("worst lateness beside two busy loops: ", *worst, " ms");
  CHECK(*worst < 50.0);  // a few ms normally; generous for sanitizer builds
  // A pure Lua loop yields as soon as its hook is armed, so its queue never
  // needs a spare. (Held by wall time, a loop whose thread the OS paused was
  // handed off, made heavy and handed off again each turn: 40-100 hand-offs
  // in this test, and the probe up to 56 ms late on a 2-core machine; and a
  // thread the OS left waiting for a core past the 4-tick wall bound was held
  // until that bound asked the kernel whether the thread was runnable: up to
  // 9 hand-offs with three busy loops beside this test.) A few are allowed
  // for whatever the kernel reports in between.
  auto st = eng.scheduler().stats();
  MESSAGE("preemptions ", st.preemptions, ", hand-offs ", st.handoffs, " (early ",
          st.early_handoffs, ")");
  CHECK(st.preemptions > 20);
  CHECK(st.handoffs <= 3);
  eng.stop();
  CHECK(hog.get().reason == exit_reason::shutdown);
  CHECK(hog2.get().reason == exit_reason::shutdown);
}

TEST_CASE("stop ends every process with reason shutdown") {
  luad::server::engine eng(luad::runtime::scheduler_options::with_workers(2));
  std::vector<std::future<luad::runtime::exit_info>> futs;
  for (int i = 0; i < 100; ++i) futs.push_back(spawn_lua(eng, "require('time').sleep(60)"));
  futs.push_back(spawn_lua(eng, "while true do end"));
  REQUIRE(eventually([&] { return eng.clock().pending() == 100; }));
  eng.stop();
  for (auto& f : futs) CHECK(f.get().reason == exit_reason::shutdown);
  CHECK(eng.scheduler().alive() == 0);
  CHECK_FALSE(eng.scheduler().spawn(luad::runtime::compile("return 1", "x"), {}).ok());
}

TEST_CASE("sleeps wait in their worker's own timer wheel, and a parked worker wakes for them") {
  luad::server::engine eng(luad::runtime::scheduler_options::with_workers(2));
  std::vector<std::future<luad::runtime::exit_info>> futs;
  for (int i = 0; i < 50; ++i) futs.push_back(spawn_lua(eng, "require('time').sleep(60)"));
  REQUIRE(eventually([&] { return eng.scheduler().timers_pending() == 50; }));
  CHECK(eng.clock().pending() == 50);  // the clock counts the workers' timers
  CHECK(eng.clock().live() == 50);
  // Every worker is parked now: the next deadline must wake one, on time.
  auto timed = spawn_lua(eng, R"(
    local time = require("time")
    local t0 = time.monotonic()
    time.sleep(0.05)
    return time.monotonic() - t0)");
  auto e = wait_exit(timed);
  REQUIRE(e.reason == exit_reason::normal);
  double slept = *e.results.at(0).get<double>();
  CHECK(slept >= 0.05);
  CHECK(slept < 1.0);
  eng.stop();  // the 50 sleepers are killed; their timers are dropped with the workers
  for (auto& f : futs) CHECK(f.get().reason == exit_reason::shutdown);
  CHECK(eng.scheduler().timers_pending() == 0);
}

TEST_CASE("a workflow-restricted process may load only deterministic or workflow modules") {
  luad::runtime::spawn_options o;
  o.ctx.allowed_classes = luad::runtime::workflow_classes;
  auto e = run_lua(R"(
    local json = require("json")
    local log = require("log")
    local ok, err = pcall(require, "time")
    assert(not ok)
    return err)",
                   o);
  REQUIRE(e.reason == exit_reason::normal);
  const auto* msg = e.results.at(0).get<std::string>();
  REQUIRE(msg);
  CHECK(msg->find("module 'time' is nondeterministic") != std::string::npos);
  CHECK(msg->find("deterministic, workflow") != std::string::npos);
}

TEST_CASE("the watchdog preempts a long loop and the time slice is configurable") {
  auto opts = luad::runtime::scheduler_options::with_workers(1);
  opts.watch.slice = std::chrono::microseconds(500);
  luad::server::engine eng(opts);
  auto before = eng.scheduler().stats().preemptions;
  // ~0.1 s or more of Lua: at least a few dozen half-millisecond slices.
  auto e = run_lua("local n = 0 for i = 1, 1e7 do n = n + i end return n", {}, &eng);
  REQUIRE(e.reason == exit_reason::normal);
  CHECK(e.results.at(0) == value(std::int64_t{10000000LL * 10000001 / 2}));
  CHECK(eng.scheduler().stats().preemptions - before >= 10);
}

TEST_CASE("kills racing with completions: every process exits exactly once") {
  luad::server::engine eng(luad::runtime::scheduler_options::with_workers(2));
  auto code = luad::runtime::compile(R"(
    local time = require("time")
    for i = 1, 30 do
      if i % 3 == 0 then time.sleep(0) else time.sleep(0.0005) end
      local x = 0
      for j = 1, (i * 97) % 500 do x = x + j end
    end
    return "done")",
                                     "race.lua");
  constexpr int n = 3000;
  std::vector<std::atomic<int>> exits(n);
  std::atomic<int> normal{0}, killed{0}, total{0};
  std::vector<luad::runtime::pid> ids;
  for (int i = 0; i < n; ++i) {
    luad::runtime::spawn_options o;
    o.on_exit = [&, i](const luad::runtime::exit_info& e) {
      exits[i]++;
      if (e.reason == exit_reason::normal) normal++;
      if (e.reason == exit_reason::killed) killed++;
      total++;
    };
    ids.push_back(*eng.scheduler().spawn(code, std::move(o)));
  }
  for (int i = 0; i < n; i += 2) eng.scheduler().kill(ids[i]);
  REQUIRE(eventually([&] { return total.load() == n; }, std::chrono::seconds(60)));
  for (int i = 0; i < n; ++i) CHECK(exits[i].load() == 1);
  CHECK(normal + killed == n);
  CHECK(killed >= 1);
  CHECK(normal >= n / 2);
  CHECK(eng.scheduler().alive() == 0);
}

TEST_CASE("mailbox and message size limits refuse sends with kind limit") {
  luad::runtime::spawn_options o;
  o.ctx.limits.mailbox = 10;
  o.ctx.limits.message_bytes = 1000;
  auto e = run_lua(R"(
    local process = require("process")
    local me = process.self()
    for i = 1, 10 do assert(process.send(me, "fill", i)) end
    local ok, err = process.send(me, "fill", 11)
    assert(ok == nil and err.kind == "limit" and err.message:find("mailbox"), err and err.message)
    process.receive("fill")
    assert(process.send(me, "fill", 11), "room again after a receive")
    ok, err = process.send(me, "big", ("x"):rep(2000))
    assert(ok == nil and err.kind == "limit" and err.message:find("larger than"))
    return true)",
                   o);
  CHECK_MESSAGE(e.reason == exit_reason::normal, e.err.message);
}

TEST_CASE("the global process limit makes spawn fail clearly") {
  auto opts = luad::runtime::scheduler_options::with_workers(1);
  opts.max_processes = 3;
  luad::server::engine eng(opts);
  auto sleeper = luad::runtime::compile("require('time').sleep(60)", "s.lua");
  CHECK(eng.scheduler().spawn(sleeper, {}).ok());
  CHECK(eng.scheduler().spawn(sleeper, {}).ok());
  CHECK(eng.scheduler().spawn(sleeper, {}).ok());
  auto refused = eng.scheduler().spawn(sleeper, {});
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.error().kind == luad::runtime::error_kind::limit);
  CHECK(luad::test::has(refused.error().message, "process limit"));
}

TEST_CASE("kill_owner ends all of one owner's processes and refuses its spawns until then") {
  luad::server::engine eng(luad::runtime::scheduler_options::with_workers(2));
  auto& sched = eng.scheduler();
  auto sleeper = luad::runtime::compile("require('time').sleep(60)", "s.lua");
  auto of = [&](const char* owner, const char* key) {
    luad::runtime::spawn_options o;
    o.ctx.owner = owner;
    o.ctx.account = sched.owners().account(key, owner, {});
    return o;
  };
  std::atomic<int> killed{0};
  constexpr int n = 200;
  luad::runtime::pid other;
  auto other_exit =
      spawn_lua(eng, "require('time').sleep(60)", of("uid:10", "uid:10/default"), &other);
  // The spawn right after kill_owner must find the owner stopping. Ending 200
  // sleepers takes the workers longer than that spawn, unless this thread is
  // descheduled in between (it was once in CI, on two busy cores): then all
  // had ended, the accounts were open again, and the round is run again.
  bool refused_once = false;
  for (int round = 1; round <= 5 && !refused_once; ++round) {
    killed = 0;
    for (int i = 0; i < n; ++i) {
      auto o = of("uid:9", i % 2 ? "uid:9/default" : "uid:9/ops");  // two accounts, one owner
      o.on_exit = [&](const luad::runtime::exit_info& e) {
        killed += e.reason == exit_reason::killed;
      };
      REQUIRE(sched.spawn(sleeper, std::move(o)).ok());
    }
    REQUIRE(eventually([&] { return eng.clock().live() == n + 1; }));  // all parked
    CHECK(sched.kill_owner("uid:9", "stop") == n);
    auto refused = sched.spawn(sleeper, of("uid:9", "uid:9/ops"));
    if (refused.ok()) {
      MESSAGE("round " << round << ": every process had ended before the spawn");
      REQUIRE(eventually([&] { return killed.load() == n; }));
      sched.kill(*refused, exit_reason::killed);
      REQUIRE(eventually([&] { return eng.clock().live() == 1; }));  // the other owner's
      continue;
    }
    refused_once = true;
    CHECK(refused.error().kind == luad::runtime::error_kind::unavailable);
    CHECK(luad::test::has(refused.error().message, "being stopped"));
    CHECK(sched.spawn(sleeper, of("uid:10", "uid:10/default")).ok());  // another owner: open
    REQUIRE(eventually([&] { return killed.load() == n; }));
  }
  REQUIRE(refused_once);
  // The last one out opened the accounts again.
  CHECK(eventually([&] { return sched.spawn(sleeper, of("uid:9", "uid:9/default")).ok(); }));
  luad::runtime::process* still = sched.find(other);  // the other owner's lives on
  CHECK(still != nullptr);
  if (still) still->release_ref();
  eng.stop();
  (void)other_exit;
}

TEST_CASE("the run queue takes owners in turn: another owner's process waits behind one turn") {
  // One worker, 300 runnable processes of one owner (each ~1 ms of Lua), then
  // one process of another owner. FIFO would run it after all 300.
  luad::server::engine eng(luad::runtime::scheduler_options::with_workers(1));
  auto& sched = eng.scheduler();
  auto busy =
      luad::runtime::compile("local x = 0 for i = 1, 200000 do x = x + i end return x", "b.lua");
  auto quick = luad::runtime::compile("return 1", "q.lua");
  auto of = [&](const char* owner) {
    luad::runtime::spawn_options o;
    o.ctx.owner = owner;
    o.ctx.account = sched.owners().account(std::string(owner) + "/default", owner, {});
    return o;
  };
  std::atomic<int> busy_done{0}, busy_done_before_quick{-1};
  constexpr int n = 300;
  for (int i = 0; i < n; ++i) {
    auto o = of("uid:9");
    o.on_exit = [&](const luad::runtime::exit_info&) { ++busy_done; };
    REQUIRE(sched.spawn(busy, std::move(o)).ok());
  }
  auto o = of("uid:10");
  o.on_exit = [&](const luad::runtime::exit_info&) { busy_done_before_quick = busy_done.load(); };
  REQUIRE(sched.spawn(quick, std::move(o)).ok());
  REQUIRE(eventually([&] { return busy_done.load() == n && busy_done_before_quick.load() >= 0; }));
  INFO("the other owner's process ended after ", busy_done_before_quick.load(), " of ", n);
  CHECK(busy_done_before_quick.load() < 30);
  eng.stop();
}

TEST_CASE("the permission hook sees spawns and cross-owner sends") {
  auto opts = luad::runtime::scheduler_options::with_workers(2);
  std::atomic<int> asked{0};
  opts.permit = [&](const luad::runtime::process&, std::string_view action,
                    std::string_view target) {
    asked++;
    if (action == "spawn") return target.find("children/sleeper.lua") == std::string_view::npos;
    return action != "send";
  };
  luad::server::engine eng(opts);
  luad::runtime::spawn_options a;
  a.ctx.owner = "alice";
  luad::runtime::pid bob_pid;
  luad::runtime::spawn_options b;
  b.ctx.owner = "bob";
  auto bob = spawn_lua(eng, "require('time').sleep(60)", std::move(b), &bob_pid);
  a.args = {luad::runtime::value(bob_pid.to_string())};
  auto chunk = luad::runtime::compile_file("tests/lua/children/permission_probe.lua");
  std::promise<luad::runtime::exit_info> done;
  a.on_exit = [&](const luad::runtime::exit_info& e) { done.set_value(e); };
  REQUIRE(eng.scheduler().spawn(chunk, std::move(a)).ok());
  auto e = done.get_future().get();
  CHECK_MESSAGE(e.reason == exit_reason::normal, e.err.message);
  CHECK(asked >= 3);
  eng.stop();
}

TEST_CASE("killing a process mid-receive frees it and its queued messages") {
  auto& eng = shared_engine();
  for (const char* src :
       {"require('process').receive('never')", "require('process').receive('never', 3600)"}) {
    CAPTURE(src);
    luad::runtime::pid id;
    auto fut = spawn_lua(eng, src, {}, &id);
    luad::runtime::process* p = nullptr;
    REQUIRE(eventually([&] {
      p = eng.scheduler().find(id);
      bool receiving = p && std::string(p->status()) == "receiving";
      if (p) p->release_ref();
      return receiving;
    }));
    CHECK(eng.scheduler().kill(id));
    auto e = fut.get();
    CHECK(e.reason == exit_reason::killed);
  }
}

TEST_CASE("a hundred thousand processes blocked in receive all end at once on stop") {
  luad::server::engine eng(luad::runtime::scheduler_options::with_workers(2));
  auto code = luad::runtime::compile("require('process').receive()", "r.lua");
  constexpr int n = 100000 / luad::test::sanitizer_scale;
  std::atomic<int> ended{0};
  for (int i = 0; i < n; ++i) {
    luad::runtime::spawn_options o;
    o.on_exit = [&](const luad::runtime::exit_info& e) {
      if (e.reason == exit_reason::shutdown) ended++;
    };
    REQUIRE(eng.scheduler().spawn(code, std::move(o)).ok());
  }
  REQUIRE(
      eventually([&] { return eng.scheduler().stats().yields >= n; }, std::chrono::seconds(60)));
  eng.stop();
  CHECK(ended == n);
  CHECK(eng.scheduler().alive() == 0);
}

TEST_CASE("children started by process.spawn and by supervisors run under their parent's limits") {
  luad::runtime::spawn_options o;
  o.ctx.limits.memory = 8 << 20;
  auto e = run_lua(R"(
    local process = require("process")
    local supervisor = require("supervisor")
    process.register("probe")
    local function probe(start)
      start()
      local m = assert(process.receive("started", 30))
      process.monitor(m.from)
      process.send(m.from, "go")
      return assert(process.receive("DOWN", 30)).payload.reason
    end
    local child = "tests/lua/children/limit_probe.lua"
    local direct = probe(function() process.spawn(child) end)
    local supervised = probe(function()
      supervisor.start({children = {{name = "p", script = child, restart = "temporary"}}})
    end)
    return direct, supervised)",
                   o);
  REQUIRE_MESSAGE(e.reason == exit_reason::normal, e.err.message);
  CHECK(e.results.at(0) == value("limit"));
  CHECK(e.results.at(1) == value("limit"));
}
