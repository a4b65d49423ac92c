// Hostile scripts against time: loops that try to hold a worker (plain, in a
// coroutine, in Lua called from C, behind pcall), and a pair that wakes each
// other forever. Two copies of each run on a two-worker scheduler (one worker
// for the pair) beside a canary timing 10 ms sleeps; then both are killed and
// must end `killed` within 100 ms.
#include <doctest/doctest.h>

#include <chrono>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>

#include "runtime/process.hpp"
#include "tests/support.hpp"

// Cases with wall-clock bounds run alone, not beside other tests on the same
// cores (ctest RUN_SERIAL: cmake/doctest_add_tests.cmake).
TEST_SUITE_BEGIN("serial");

using luad::runtime::exit_info;
using luad::runtime::exit_reason;
using luad::runtime::pid;
using luad::test::spawn_lua;
using luad::test::wait_exit;
using std::chrono::milliseconds;
using std::chrono::steady_clock;

namespace {

std::string read_script(const std::string& name) {
  std::ifstream in("tests/hostile/scripts/" + name, std::ios::binary);
  REQUIRE(in);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

constexpr const char* k_canary = R"(
  local time = require("time")
  local worst = 0
  for _ = 1, 25 do
    local t0 = time.monotonic()
    time.sleep(0.01)
    worst = math.max(worst, time.monotonic() - t0 - 0.01)
  end
  return worst)";

// Runs two copies of `name` beside the canary, then kills them.
// `beside` runs with them too, after the canary.
void hold_and_kill(const std::string& name, unsigned workers = 2,
                   const std::function<void(luad::server::engine&)>& beside = {}) {
  std::string source = read_script(name);
  REQUIRE(source.find("-- expect: kill") != std::string::npos);
  luad::server::engine eng(luad::runtime::scheduler_options::with_workers(workers));
  pid a, b;
  auto fa = spawn_lua(eng, source, {}, &a);
  auto fb = spawn_lua(eng, source, {}, &b);
  auto canary = spawn_lua(eng, k_canary);
  exit_info c = wait_exit(canary, std::chrono::seconds(20));
  REQUIRE(c.reason == exit_reason::normal);
  double worst = *c.results.at(0).get<double>();
  MESSAGE(name << ": canary worst lateness " << worst * 1000 << " ms");
  // 20 ms is the goal on a quiet machine (docs/security.md); the test allows
  // for a shared, loaded one.
  CHECK(worst < 0.1);
  if (beside) beside(eng);
  for (auto* f : {&fa, &fb}) {
    REQUIRE(f->wait_for(milliseconds(0)) == std::future_status::timeout);  // still holding
  }
  for (auto [id, f] : {std::pair{a, &fa}, std::pair{b, &fb}}) {
    auto t0 = steady_clock::now();
    REQUIRE(eng.scheduler().kill(id));
    REQUIRE(f->wait_for(std::chrono::seconds(5)) == std::future_status::ready);
    auto dt = std::chrono::duration_cast<milliseconds>(steady_clock::now() - t0);
    CHECK(dt < milliseconds(100));
    CHECK(f->get().reason == exit_reason::killed);
  }
}

}  // namespace

TEST_CASE("hostile: while true do end is preempted and killed") {
  hold_and_kill("watchdog_while_true.lua");
}

TEST_CASE("hostile: a loop in a sort comparator gets a spare thread and is killed") {
  hold_and_kill("watchdog_sort_comparator.lua");
}

TEST_CASE("hostile: a loop in __tostring reached through print is killed") {
  hold_and_kill("watchdog_tostring_print.lua");
}

TEST_CASE("hostile: a loop in a coroutine is preempted and killed") {
  hold_and_kill("watchdog_coroutine_loop.lua");
}

TEST_CASE("hostile: pcall cannot catch the kill") { hold_and_kill("watchdog_pcall_loop.lua"); }

TEST_CASE("hostile: a loop in a gsub callback is killed") {
  hold_and_kill("watchdog_gsub_callback.lua");
}

// One worker, so the pair and everyone else share it. The pair's wake-ups go
// through the run-next slot (runtime/worker.cpp); a process spawned from
// outside the scheduler waits in the queue, and must not wait for the pair.
TEST_CASE("hostile: two processes waking each other forever do not starve the queue") {
  hold_and_kill("watchdog_wake_pair.lua", 1, [](luad::server::engine& eng) {
    for (int i = 0; i < 20; ++i) {
      auto t0 = steady_clock::now();
      auto done = spawn_lua(eng, "return 1");
      exit_info e = wait_exit(done, std::chrono::seconds(20));
      REQUIRE(e.reason == exit_reason::normal);
      CHECK(steady_clock::now() - t0 < milliseconds(500));
    }
  });
}

TEST_SUITE_END();
