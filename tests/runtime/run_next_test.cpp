// A worker's run-next slot (worker::run_next): a process woken by a turn runs
// after it without the queue's lock, in the order it was woken, and a turn
// held past a hand-off does not leave the process it woke in a slot the spare
// never looks at.
#include <doctest/doctest.h>

#include <chrono>
#include <string>

#include "runtime/process.hpp"
#include "tests/support.hpp"

// Cases with wall-clock bounds run alone, not beside other tests on the same
// cores (ctest RUN_SERIAL: cmake/doctest_add_tests.cmake).
TEST_SUITE_BEGIN("serial");

using luad::runtime::exit_info;
using luad::runtime::exit_reason;
using luad::runtime::pid;
using luad::runtime::scheduler_options;
using luad::test::eventually;
using luad::test::spawn_lua;

namespace {

bool has_status(luad::server::engine& eng, pid id, std::string_view status) {
  auto* p = eng.scheduler().find(id);
  if (!p) return false;
  bool r = std::string_view(p->status()) == status;
  p->release_ref();
  return r;
}

// Registers `name`, waits for one message, then tells "c" its name.
std::string answerer(const char* name, const char* says) {
  return std::string("local process = require('process')\nprocess.register('") + name +
         "')\nprocess.recv()\nprocess.send('c', '" + says + "')";
}

}  // namespace

TEST_CASE("processes woken by one turn run in the order they were woken") {
  luad::server::engine eng(scheduler_options::with_workers(1));
  const char* collector = R"(
    local process = require("process")
    process.register("c")
    local got = {}
    for _ = 1, 3 do got[#got + 1] = process.recv() end
    return table.concat(got, ","))";
  pid c, a, b, d;
  auto fc = spawn_lua(eng, collector, {}, &c);
  auto fa = spawn_lua(eng, answerer("a", "A"), {}, &a);
  auto fb = spawn_lua(eng, answerer("b", "B"), {}, &b);
  auto fd = spawn_lua(eng, answerer("d", "D"), {}, &d);
  REQUIRE(eventually([&] {
    return has_status(eng, c, "receiving") && has_status(eng, a, "receiving") &&
           has_status(eng, b, "receiving") && has_status(eng, d, "receiving");
  }));
  // One turn wakes a, b and d: a takes the run-next slot, b and d queue.
  auto fp = spawn_lua(eng, R"(
    local process = require("process")
    process.send("a", "go")
    process.send("b", "go")
    process.send("d", "go"))");
  exit_info e = luad::test::wait_exit(fc);
  REQUIRE_MESSAGE(e.reason == exit_reason::normal, e.err.message);
  CHECK(*e.results.at(0).get<std::string>() == "A,B,D");
  eng.stop();
}

TEST_CASE("a process woken from a turn held past a hand-off runs on the spare at once") {
  // One worker. The holder's sort comparator cannot yield; past its slice the
  // worker's queue goes to a spare thread. The comparator then wakes "w" and
  // goes on for up to 30 s: w must run on the spare meanwhile, not wait in a
  // slot that only the held thread would have looked at.
  luad::server::engine eng(scheduler_options::with_workers(1));
  pid w, h;
  auto fw = spawn_lua(eng, R"(
    local process = require("process")
    process.register("w")
    local _, payload = process.recv()
    return payload)",
                      {}, &w);
  REQUIRE(eventually([&] { return has_status(eng, w, "receiving"); }));
  auto before = eng.scheduler().stats();
  auto fh = spawn_lua(eng, R"(
    local process = require("process")
    local time = require("time")
    local t0, sent = time.monotonic(), false
    table.sort({3, 1, 2, 5, 4}, function(a, b)
      while time.monotonic() - t0 < 30 do
        if not sent and time.monotonic() - t0 > 0.3 then
          sent = true
          process.send("w", "wake", "from a held turn")
        end
      end
      return a < b
    end))",
                      {}, &h);
  REQUIRE(fw.wait_for(std::chrono::seconds(20)) == std::future_status::ready);
  exit_info e = fw.get();
  REQUIRE_MESSAGE(e.reason == exit_reason::normal, e.err.message);
  CHECK(*e.results.at(0).get<std::string>() == "from a held turn");
  CHECK(eng.scheduler().stats().handoffs > before.handoffs);
  CHECK(has_status(eng, h, "running"));  // the holder is still in its turn
  REQUIRE(eng.scheduler().kill(h));
  CHECK(luad::test::wait_exit(fh).reason == exit_reason::killed);
  eng.stop();
}

TEST_SUITE_END();
