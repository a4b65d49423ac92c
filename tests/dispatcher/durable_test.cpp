// The durable sink (dispatcher/durable.hpp) on a real engine and a real
// SQLite journal: a run replayed from its journal sees the same outcomes and
// dispatches nothing twice; a changed command stops it with a nondeterminism
// report; a sleep cut by a crash keeps its deadline; a journal that cannot be
// written stops the run instead of letting it see an unrecorded outcome.
#include "dispatcher/durable.hpp"

#include <doctest/doctest.h>

#include <filesystem>

#include <atomic>
#include <chrono>
#include <future>
#include <mutex>
#include <string>
#include <vector>

#include "runtime/json.hpp"
#include "runtime/message_codec.hpp"
#include "runtime/post.hpp"
#include "runtime/process.hpp"
#include "server/engine.hpp"
#include "tests/modules/store_backends.hpp"
#include "tests/support.hpp"

namespace {

using luad::dispatcher::durable_sink;
using luad::dispatcher::journal_backend;
using luad::dispatcher::journal_entry;
using luad::dispatcher::run_record;
using luad::dispatcher::step_state;
using luad::runtime::command_id;
using luad::runtime::exit_reason;
using luad::runtime::value;
using luad::test::eventually;
using luad::test::has;
using clk = std::chrono::steady_clock;

// Where the journal lives: SQLite's file in a folder, or a fresh database of
// the tests' PostgreSQL; every case runs on both.
struct sqlite_journal {
  static luad::server::engine_options options(const std::string& dir) {
    return {luad::runtime::scheduler_options::with_workers(2), dir, {}};
  }
};
struct postgres_journal {
  static luad::server::engine_options options(const std::string&) {
    luad::server::engine_options o{luad::runtime::scheduler_options::with_workers(2), "", {}};
    o.postgres.conninfo = luad::test::shared_postgres().new_database();
    return o;
  }
};

// An engine whose store (and journal) is on `Backend`.
template <class Backend>
struct journaled_engine {
  luad::test::temp_dir dir{"durable"};
  luad::server::engine eng{Backend::options(dir.path().string())};
  std::mutex mu;
  std::vector<std::string> reports;  // what stop_fn was told
  // The running process: stop_fn ends it, as the daemon does.
  std::atomic<bool> started{false};
  luad::runtime::pid current;

  journal_backend& journal() { return eng.storage(); }

  void create(const std::string& run) {
    std::promise<luad::runtime::status> p;
    run_record r;
    r.id = run;
    r.script = "test.lua";
    journal().create_run(std::move(r), [&](luad::runtime::status s) { p.set_value(std::move(s)); });
    auto s = p.get_future().get();
    REQUIRE_MESSAGE(s, (s ? "" : s.error().message));
  }

  std::vector<journal_entry> history(const std::string& run) {
    auto h = journal().history(run);
    REQUIRE_MESSAGE(h, (h ? "" : h.error().message));
    return *h;
  }

  // Starts `source` as run `run`, answered first from `past`, with the
  // recorded messages `inbox`; its exit is the future's.
  std::future<luad::runtime::exit_info> start(
      const std::string& run, const std::string& source, std::vector<journal_entry> past = {},
      std::shared_ptr<durable_sink>* sink_out = nullptr,
      std::vector<luad::dispatcher::inbox_message> inbox = {}) {
    started = false;
    auto sink = std::make_shared<durable_sink>(run, "hash", std::move(past), eng.commands(),
                                               journal(), [this](std::string report) {
                                                 {
                                                   std::lock_guard lock(mu);
                                                   reports.push_back(std::move(report));
                                                 }
                                                 if (eventually([&] { return started.load(); }))
                                                   eng.scheduler().kill(current);
                                               });
    sink->restore_inbox(std::move(inbox));
    if (sink_out) *sink_out = sink;
    luad::runtime::spawn_options so;
    so.ctx.permissions = {"store:d"};
    so.commands = sink;
    auto fut = luad::test::spawn_lua(eng, source, std::move(so), &current);
    started = true;
    return fut;
  }

  // Runs `source` as run `run`, answered first from `past`.
  luad::runtime::exit_info run(const std::string& run, const std::string& source,
                               std::vector<journal_entry> past = {},
                               std::shared_ptr<durable_sink>* sink_out = nullptr,
                               std::vector<luad::dispatcher::inbox_message> inbox = {}) {
    auto fut = start(run, source, std::move(past), sink_out, std::move(inbox));
    return luad::test::wait_exit(fut, std::chrono::seconds(20));
  }

  std::string report(std::size_t i = 0) {
    std::lock_guard lock(mu);
    return i < reports.size() ? reports[i] : std::string();
  }
};

constexpr const char* k_steps = R"(
  local store, time = require("store"), require("time")
  local a = assert(store.incr("n", 1))
  time.sleep(0)
  local b = assert(store.incr("n", 10))
  return a, b
)";

}  // namespace

TEST_CASE_TEMPLATE("durable: a replayed run sees the same outcomes and dispatches nothing twice", B,
                   sqlite_journal, postgres_journal) {
  journaled_engine<B> j;
  j.create("r1");
  auto first = j.run("r1", k_steps);
  INFO(first.err.message);
  REQUIRE(first.reason == exit_reason::normal);
  CHECK(first.results == std::vector<value>{value(1), value(11)});
  std::vector<journal_entry> past = j.history("r1");
  REQUIRE(past.size() == 3);
  CHECK(past[0].command == command_id::store_op);
  CHECK(past[1].command == command_id::clock_sleep);
  CHECK(past[1].state == step_state::done);
  CHECK(past[2].command == command_id::store_op);

  std::shared_ptr<durable_sink> sink;
  auto again = j.run("r1", k_steps, past, &sink);
  REQUIRE(again.reason == exit_reason::normal);
  CHECK(again.results == first.results);  // answered from the journal...
  CHECK(sink->steps() == 3);
  CHECK(j.history("r1").size() == 3);  // ...which did not grow
  // The counter was incremented once per step, not again on replay.
  auto read = luad::test::run_lua(
      "return require('store').get('n')",
      [] {
        luad::runtime::spawn_options so;
        so.ctx.permissions = {"store:d"};
        return so;
      }(),
      &j.eng);
  CHECK(read.results == std::vector<value>{value(11)});
  CHECK(j.report().empty());
}

TEST_CASE_TEMPLATE(
    "durable: clocks are recorded, math.random repeats on replay, time.after is refused", B,
    sqlite_journal, postgres_journal) {
  journaled_engine<B> j;
  j.create("r-clock");
  const char* source = R"(
    local time = require("time")
    local a, b = math.random(1 << 40), math.random()
    local ok, err = pcall(math.randomseed)
    math.randomseed(7)
    local c = math.random(1000)
    local timer, refused = time.after(0.01, "t")
    assert(timer == nil and refused.message:find("not in a durable run"), "time.after")
    return time.now(), time.monotonic(), a, b, c, ok, err)";
  auto first = j.run("r-clock", source);
  REQUIRE_MESSAGE(first.reason == exit_reason::normal, first.err.message);
  REQUIRE(first.results.size() == 7);
  CHECK(first.results[5] == value(false));
  const std::string* why = first.results[6].template get<std::string>();
  REQUIRE(why);
  CHECK(has(*why, "math.randomseed: give a seed"));
  // Two steps: the clocks. The draws take none.
  std::vector<journal_entry> past = j.history("r-clock");
  REQUIRE(past.size() == 2);
  CHECK(past[0].command == command_id::workflow_value);
  CHECK(past[1].command == command_id::workflow_value);
  // The replay sees the same clocks and draws the same numbers.
  auto again = j.run("r-clock", source, past);
  REQUIRE_MESSAGE(again.reason == exit_reason::normal, again.err.message);
  CHECK(again.results == first.results);
  CHECK(j.history("r-clock").size() == 2);
  // Another run draws other numbers (the seed is its run id's).
  j.create("r-other");
  auto other = j.run("r-other", source);
  REQUIRE(other.results.size() == 7);
  CHECK(other.results[2] != first.results[2]);
  CHECK(other.results[4] == first.results[4]);  // (seeded with 7 by hand)
  CHECK(j.report().empty());
}

TEST_CASE_TEMPLATE("durable: a half-replayed run goes on live where its journal ends", B,
                   sqlite_journal, postgres_journal) {
  journaled_engine<B> j;
  j.create("r2");
  REQUIRE(j.run("r2", k_steps).reason == exit_reason::normal);
  std::vector<journal_entry> past = j.history("r2");
  past.resize(1);  // as if the daemon had died after the first step
  // The journal in the database has all three; a fresh run with a shorter
  // past would append at a step already done, which the journal refuses.
  // So start a second run whose journal really holds only the first step.
  j.create("r2b");
  journal_entry first = past[0];
  first.run = "r2b";
  std::promise<luad::runtime::status> p;
  j.journal().append(first, [&](luad::runtime::status s) { p.set_value(std::move(s)); });
  REQUIRE(p.get_future().get());
  auto resumed = j.run("r2b", k_steps, {first});
  REQUIRE(resumed.reason == exit_reason::normal);
  // Step 0 came from the journal (the counter was 11 after run r2, not 0):
  // the replay answered 1 without incrementing; steps 1 and 2 ran live.
  CHECK(resumed.results == std::vector<value>{value(1), value(21)});
  CHECK(j.history("r2b").size() == 3);
}

TEST_CASE_TEMPLATE("durable: a command that differs from the journal stops the run with a report",
                   B, sqlite_journal, postgres_journal) {
  journaled_engine<B> j;
  j.create("r3");
  REQUIRE(j.run("r3", k_steps).reason == exit_reason::normal);
  auto changed = j.run("r3", R"(
    local store = require("store")
    local a = store.incr("other", 1)  -- another key than the journal's step 0
    return a
  )",
                       j.history("r3"));
  CHECK(changed.reason == exit_reason::killed);
  std::string report = j.report();
  INFO(report);
  CHECK(has(report, "\"reason\":\"nondeterminism\""));
  CHECK(has(report, "\"step\":0"));
  CHECK(has(report, "other"));
  CHECK(has(report, "\"code_hash\":\"hash\""));
}

TEST_CASE_TEMPLATE("durable: a sleep cut short by a crash ends at its journaled deadline", B,
                   sqlite_journal, postgres_journal) {
  journaled_engine<B> j;
  j.create("r4");
  // What a daemon that died 0.3 s into a 5 s sleep left: a started step.
  journal_entry cut;
  cut.run = "r4";
  cut.step = 0;
  cut.command = command_id::clock_sleep;
  luad::runtime::encode_value(value(5.0), cut.args);
  cut.state = step_state::started;
  double deadline =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count() +
      0.3;
  luad::runtime::encode_value(value(deadline), cut.result);
  std::promise<luad::runtime::status> p;
  j.journal().append(cut, [&](luad::runtime::status s) { p.set_value(std::move(s)); });
  REQUIRE(p.get_future().get());
  auto t0 = clk::now();
  auto e = j.run("r4", "require('time').sleep(5) return 'woke'", {cut});
  double took = std::chrono::duration<double>(clk::now() - t0).count();
  REQUIRE(e.reason == exit_reason::normal);
  CHECK(took < 3);     // not the 5 s the script asks for again
  CHECK(took > 0.15);  // but the rest of the original one
  auto h = j.history("r4");
  REQUIRE(h.size() == 1);
  CHECK(h[0].state == step_state::done);
}

TEST_CASE_TEMPLATE("durable: a journal that cannot be written stops the run", B, sqlite_journal,
                   postgres_journal) {
  journaled_engine<B> j;
  j.create("r5");
  j.eng.storage().inject(luad::dispatcher::storage::fault::read_only);
  auto e = j.run("r5", R"(
    local ok, err = require("store").incr("n", 1)
    return "went on", ok, err and err.kind
  )");
  j.eng.storage().inject(luad::dispatcher::storage::fault::none);
  // The process never saw an outcome its journal does not hold.
  CHECK(e.reason == exit_reason::killed);
  CHECK(has(j.report(), "\"reason\":\"journal\""));
  CHECK(j.history("r5").empty());
}

TEST_CASE_TEMPLATE("durable: children need the server's hooks; links and monitors are refused", B,
                   sqlite_journal, postgres_journal) {
  journaled_engine<B> j;
  j.create("r-spawn");
  // (A path inside the script root: for a source, the daemon's folder.)
  std::string child = (std::filesystem::current_path() / "child.lua").string();
  auto s = j.run("r-spawn", R"(
    local process, child = require("process"), ")" +
                                child + R"("
    local _, err = process.spawn(child)
    local _, linked = process.spawn_link(child)
    local _, monitored = process.spawn_monitor(child)
    local _, waited = require("workflow").wait("r-1")
    return err.message, linked.message, monitored.message, waited.message)");
  REQUIRE_MESSAGE(s.reason == exit_reason::normal, s.err.message);
  REQUIRE(s.results.size() == 4);
  INFO((s.results[0].template get<std::string>() ? *s.results[0].template get<std::string>()
                                                 : std::string("?")));
  CHECK(s.results[0] == value("workflow.start: this run cannot start children"));
  CHECK(has(*s.results[1].template get<std::string>(),
            "spawn_link and spawn_monitor: not in a durable run"));
  CHECK(s.results[2] == s.results[1]);
  CHECK(s.results[3] == value("workflow.wait: this run cannot wait for runs"));
  // The start and the wait are steps, recorded with their errors.
  auto h = j.history("r-spawn");
  REQUIRE(h.size() == 2);
  CHECK(h[0].failed);
  CHECK(h[1].failed);
}

TEST_CASE_TEMPLATE("durable: messages are recorded before they are received, and received once", B,
                   sqlite_journal, postgres_journal) {
  journaled_engine<B> j;
  j.create("r-inbox");
  const char* source = R"(
    local process = require("process")
    local a = process.receive("n")
    local _, late = process.recv("none", 0.05)
    local topic, payload, from = process.recv({"n", "m"})
    assert(from == nil, "sent from outside: no sender")
    return a.payload + payload, late and late.kind, topic)";
  std::shared_ptr<durable_sink> sink;
  auto fut = j.start("r-inbox", source, {}, &sink);
  // Sent from outside (as the protocol's send does): each goes to the inbox.
  auto send = [&](const char* topic, std::int64_t n) {
    std::string bytes;
    luad::runtime::encode_value(value(n), bytes);
    luad::runtime::process* p = nullptr;
    REQUIRE(eventually([&] { return (p = j.eng.scheduler().find(j.current)) != nullptr; }));
    auto st = luad::runtime::post(*p, luad::runtime::pid{}, topic, bytes);
    p->release_ref();
    REQUIRE_MESSAGE(st, (st ? "" : st.error().message));
  };
  send("n", 5);
  send("m", 7);
  send("n", 100);  // never received: stays in the inbox
  auto e = luad::test::wait_exit(fut, std::chrono::seconds(20));
  INFO(e.err.message);
  REQUIRE(e.reason == exit_reason::normal);
  // "n" 5 first; the timeout; then the first of "n" or "m" left: "m" 7.
  CHECK(e.results == std::vector<value>{value(12), value("timeout"), value("m")});
  auto past = j.history("r-inbox");
  REQUIRE(past.size() == 3);
  auto recorded = j.eng.storage().messages("r-inbox");
  REQUIRE(recorded);
  REQUIRE(recorded->size() == 3);
  CHECK(recorded->at(2).topic == "n");
  // Replayed with its inbox: the same results, and nothing new received or
  // journaled; the message it never took is still waiting.
  std::shared_ptr<durable_sink> again_sink;
  auto again = j.run("r-inbox", source, past, &again_sink, *recorded);
  REQUIRE(again.reason == exit_reason::normal);
  CHECK(again.results == e.results);
  CHECK(j.history("r-inbox").size() == 3);
  CHECK(j.report().empty());
  // A fresh run on the same inbox (as after a crash before any receive): the
  // first "n" it takes is 5 again, not a copy or a later one.
  auto fresh_past = std::vector<journal_entry>{};
  j.create("r-inbox2");
  for (auto m : *recorded) {
    m.run = "r-inbox2";
    std::promise<luad::runtime::status> done;
    j.eng.storage().append_message(m, [&](luad::runtime::status s) { done.set_value(s); });
    REQUIRE(done.get_future().get());
  }
  auto replay_two = j.run("r-inbox2", "return require('process').receive('n').payload", {}, nullptr,
                          *j.eng.storage().messages("r-inbox2"));
  CHECK(replay_two.results == std::vector<value>{value(5)});
}

TEST_CASE_TEMPLATE(
    "durable: past the journal's bound each command fails with limit, journaling nothing", B,
    sqlite_journal, postgres_journal) {
  // A run that loops on a cheap command forever would fill the disk.
  journaled_engine<B> j;
  j.create("r-full");
  auto sink = std::make_shared<durable_sink>(
      "r-full", "hash", std::vector<journal_entry>{}, j.eng.commands(), j.journal(),
      [](std::string) {}, 50);
  luad::runtime::spawn_options so;
  so.commands = sink;
  auto fut = luad::test::spawn_lua(j.eng, R"(
    local workflow = require("workflow")
    local n = 0
    while true do
      local ok, err = pcall(workflow.now)
      if not ok then return n, tostring(err) end
      n = n + 1
    end)",
                                   std::move(so));
  auto e = luad::test::wait_exit(fut, std::chrono::seconds(20));
  REQUIRE_MESSAGE(e.reason == exit_reason::normal, e.err.message);
  CHECK(e.results.at(0) == value(50));
  const std::string* why = e.results.at(1).template get<std::string>();
  REQUIRE(why);
  CHECK(has(*why, "the run's journal is full (50 steps, [limits] journal_steps)"));
  CHECK(j.history("r-full").size() == 50);
}

TEST_CASE_TEMPLATE(
    "durable: workflow.version records max live, replays it, and is 0 for older histories", B,
    sqlite_journal, postgres_journal) {
  journaled_engine<B> j;
  // Old code, before the change: one sleep.
  const char* v0 = R"(
    local time = require("time")
    time.sleep(0)
    return "old")";
  // New code: a version call where the change begins.
  const char* v1 = R"(
    local time, workflow = require("time"), require("workflow")
    local v = workflow.version("add-step", 0, 1)
    time.sleep(0)
    if v >= 1 then time.sleep(0) end
    return v)";
  // A run begun on the old code replays on the new as version 0: its history
  // has no record of the change, and the version takes no step.
  j.create("v-old");
  REQUIRE(j.run("v-old", v0).reason == exit_reason::normal);
  auto old_past = j.history("v-old");
  REQUIRE(old_past.size() == 1);
  auto replayed_old = j.run("v-old", v1, old_past);
  INFO(j.report());
  REQUIRE(replayed_old.reason == exit_reason::normal);
  CHECK(replayed_old.results == std::vector<value>{value(0)});
  CHECK(j.history("v-old").size() == 1);
  // A new run records version 1 (the version is step 0) and replays it.
  j.create("v-new");
  auto live = j.run("v-new", v1);
  REQUIRE(live.reason == exit_reason::normal);
  CHECK(live.results == std::vector<value>{value(1)});
  auto new_past = j.history("v-new");
  REQUIRE(new_past.size() == 3);
  CHECK(new_past[0].command == command_id::workflow_value);
  // Later code that raised max still replays the recorded version 1.
  std::string v2 = v1;
  v2.replace(v2.find("0, 1)"), 5, "0, 2)");
  auto replayed = j.run("v-new", v2, new_past);
  REQUIRE(replayed.reason == exit_reason::normal);
  CHECK(replayed.results == std::vector<value>{value(1)});
  CHECK(j.report().empty());
  // Code that dropped version 0 cannot replay the old history: suspended.
  std::string v3 = v1;
  v3.replace(v3.find("0, 1)"), 5, "1, 1)");
  auto refused = j.run("v-old", v3, old_past);
  CHECK(refused.reason != exit_reason::normal);
  CHECK(has(j.report(), "nondeterminism"));
  CHECK(has(j.report(), "version 0 of change 'add-step'"));
  // Not durable, the version is max; bad arguments are argument errors.
  CHECK(luad::test::run_lua("return require('workflow').version('x', 0, 3)", {}, &j.eng).results ==
        std::vector<value>{value(3)});
  auto bad = luad::test::run_lua("return require('workflow').version('x', 2, 1)", {}, &j.eng);
  CHECK(bad.reason == exit_reason::error);
  CHECK(has(bad.err.message, "0 <= min <= max"));
}

TEST_CASE_TEMPLATE("durable: a send is recorded as it is made, and a replay does not send it again",
                   B, sqlite_journal, postgres_journal) {
  journaled_engine<B> j;
  j.create("r-send");
  const char* source = R"(
    local process = require("process")
    local me = process.self()
    assert(process.send(me, "n", 5))
    local ok = process.send("nobody-by-this-name", "n", 1)  -- a dead letter: true
    local m = process.receive("n")
    return m.payload, ok)";
  auto e = j.run("r-send", source);
  INFO(e.err.message);
  REQUIRE(e.reason == exit_reason::normal);
  CHECK(e.results == std::vector<value>{value(5), value(true)});
  auto past = j.history("r-send");
  REQUIRE(past.size() == 3);  // two sends (side effects), one receive
  auto inbox = j.eng.storage().messages("r-send");
  REQUIRE(inbox);
  CHECK(inbox->size() == 1);
  // Replayed: the sends' results come from the journal; nothing is sent.
  auto again = j.run("r-send", source, past, nullptr, *inbox);
  REQUIRE(again.reason == exit_reason::normal);
  CHECK(again.results == e.results);
  auto after = j.eng.storage().messages("r-send");
  REQUIRE(after);
  CHECK(after->size() == 1);
  CHECK(j.history("r-send").size() == 3);
}
