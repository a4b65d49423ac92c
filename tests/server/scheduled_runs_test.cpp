// scheduled_runs in process, with the wall clock shifted to a little before
// a minute's turn: the tick fires on time, its run is recorded with that
// tick, and the timer is armed for the next one. (The catchup of missed
// ticks is tested against the real daemon: daemon_workflow_durable_test.)
#include <doctest/doctest.h>

#include <boost/asio/io_context.hpp>

#include <chrono>
#include <thread>

#include "server/durable_runs.hpp"
#include "server/scheduled_runs.hpp"
#include "tests/support.hpp"

namespace {

using luad::test::eventually;
using std::chrono::system_clock;
namespace json = boost::json;

}  // namespace

TEST_CASE("scheduled runs: a tick starts a run recorded with its tick, then waits for the next") {
  luad::test::temp_dir dir("sched");
  luad::server::config cfg;
  luad::server::workflow_config w;
  w.name = "every-minute";
  w.script = dir.write("tick.lua", "return 'ticked'").string();
  w.durable = true;
  w.schedule = "* * * * *";
  cfg.workflows.push_back(w);
  luad::server::engine eng{luad::server::engine_options{
      luad::runtime::scheduler_options::with_workers(1), (dir / "data").string(), {}}};
  boost::asio::io_context io;
  luad::server::events ev(io);
  luad::server::durable_runs runs(cfg, eng, ev, io);
  // The clock 0.3 s before the turn of a minute.
  auto real = system_clock::now();
  auto turn = std::chrono::ceil<std::chrono::minutes>(real) + std::chrono::minutes(1);
  auto shift = turn - std::chrono::milliseconds(300) - real;
  luad::server::scheduled_runs schedules(runs, io, [shift] { return system_clock::now() + shift; });
  auto caught_up = schedules.start(w);
  REQUIRE(caught_up);
  CHECK(*caught_up == 0);  // it never ran: nothing was missed
  double turn_s = luad::server::unix_seconds(turn);
  REQUIRE(schedules.next_tick(w.name));
  CHECK(*schedules.next_tick(w.name) == turn_s);
  // Nothing before the tick; its run right after.
  io.run_for(std::chrono::milliseconds(100));
  CHECK(schedules.ticks_run() == 0);
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (schedules.ticks_run() == 0 && std::chrono::steady_clock::now() < until)
    io.run_for(std::chrono::milliseconds(20));
  REQUIRE(schedules.ticks_run() == 1);
  json::array listed = runs.runs_of(w.name);
  REQUIRE(listed.size() == 1);
  CHECK(listed[0].at("tick").to_number<double>() == turn_s);
  CHECK(*schedules.next_tick(w.name) == turn_s + 60);
  REQUIRE(eventually([&] {
    io.poll();
    json::array now = runs.runs_of(w.name);
    return now.size() == 1 && now[0].at("state") == "completed";
  }));
  auto last = runs.last_tick(w.name);
  REQUIRE(last);
  CHECK(*last == turn_s);
  // Stopped: no timer keeps the io context busy.
  CHECK(schedules.stop(w.name));
  CHECK_FALSE(schedules.following(w.name));
  io.restart();
  io.run_for(std::chrono::milliseconds(200));  // (the canceled wait's handler runs)
  CHECK(io.stopped());                         // out of work: no timer left
  CHECK(schedules.ticks_run() == 1);
  // As the daemon does: the engine stops (storage drained) before `runs` is
  // destroyed. The run's state write completes on the storage thread and
  // calls back into `runs`, which could be after the state read above.
  eng.stop();
}
