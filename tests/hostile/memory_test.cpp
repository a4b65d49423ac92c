// Hostile memory attacks: everything a process makes the daemon hold outside
// its Lua heap is bounded and charged (exit copies, queued messages, timers),
// and running out of memory while a process exits ends only that process.
// Daemon RSS is the test binary's own (the daemon runs in this process).
#include <doctest/doctest.h>
#include <boost/json.hpp>

#include <fstream>
#include <sstream>
#include <string>

#include "runtime/block_pool.hpp"
#include "runtime/code.hpp"
#include "runtime/process.hpp"
#include "runtime/span_pool.hpp"
#include "server/engine.hpp"
#include "tests/hostile/daemon_process.hpp"
#include "tests/server/daemon_support.hpp"
#include "tests/support.hpp"

using namespace luad_test;
using luad::runtime::exit_reason;
using luad::test::run_lua;

namespace {

// The text of tests/hostile/scripts/NAME (tests run from the source tree).
std::string hostile_script(const std::string& name) {
  std::ifstream in("tests/hostile/scripts/" + name);
  REQUIRE(in);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// This process's resident set (the daemon's, since it runs in-process), bytes.
std::size_t rss_bytes() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoull(line.substr(6)) * 1024;
  }
  return 0;
}

constexpr std::size_t MiB = std::size_t{1} << 20;

// How far the resident set grew since `before` (0 if it shrank: other cases
// in the same process may have freed memory in between).
std::size_t rss_growth(std::size_t before) {
  std::size_t after = rss_bytes();
  return after > before ? after - before : 0;
}

}  // namespace

TEST_CASE("hostile: four exits of one 1 MiB string shared 250 times end with limit, RSS bounded") {
  running_daemon d("", {{"scripts/memory_dag_exit.lua", hostile_script("memory_dag_exit.lua")}});
  client c(d.socket);
  std::size_t before = rss_bytes();
  for (int i = 0; i < 4; ++i) {
    json::value r = c.call("spawn", {{"script", "memory_dag_exit.lua"}, {"wait", true}});
    CHECK(get(r, "/result/reason") == "limit");
    CHECK(get(r, "/result/kind") == "limit");
    CHECK(has(text(get(r, "/result/message")), "exit limit"));
  }
  std::size_t grown = rss_growth(before);
  INFO("RSS grew by " << grown / MiB << " MiB");
  // Each process's Lua heap held 1 MiB (freed at exit); nothing of 250 MiB is
  // kept. Before the bound, four runs grew the daemon by about 1 GB.
  CHECK(grown < 48 * MiB);
}

TEST_CASE("hostile: 60 self-sends of 10 MiB fail with limit past the mailbox's bytes") {
  running_daemon d("",
                   {{"scripts/memory_self_flood.lua", hostile_script("memory_self_flood.lua")}});
  client c(d.socket);
  std::size_t before = rss_bytes();
  json::value r = c.call("spawn", {{"script", "memory_self_flood.lua"}, {"wait", true}});
  INFO("reply: " << r);
  REQUIRE(get(r, "/result/reason") == "normal");
  std::int64_t sent = get(r, "/result/results/0").as_int64();
  std::int64_t refused = get(r, "/result/results/1").as_int64();
  CHECK(sent == 6);  // 64 MiB of mailbox_bytes hold six messages of 10 MiB
  CHECK(refused == 54);
  std::size_t grown = rss_growth(before);
  INFO("RSS grew by " << grown / MiB << " MiB");
  // ASan keeps freed blocks in quarantine and maps shadow memory: looser there.
  CHECK(grown < (luad_hostile::asan_build ? 400 : 160) * MiB);  // unbounded, it was 600 MB
}

TEST_CASE("hostile: 100 timers of 1 MiB are refused past timer_size and die with the process") {
  auto& eng = luad::test::shared_engine();
  std::size_t live_before = eng.clock().live();
  std::size_t before = rss_bytes();
  auto e = run_lua(hostile_script("memory_timer_flood.lua"));
  REQUIRE(e.reason == exit_reason::normal);
  REQUIRE(e.results.size() == 2);
  CHECK(*e.results[0].get<std::int64_t>() == 15);  // 16 MiB of timer_bytes: 15 of 1 MiB + topic
  CHECK(*e.results[1].get<std::int64_t>() == 85);
  // Its hour-long timers were canceled at its exit, their payloads freed.
  CHECK(eng.clock().live() == live_before);
  std::size_t grown = rss_growth(before);
  INFO("RSS grew by " << grown / MiB << " MiB");
  CHECK(grown < (luad_hostile::asan_build ? 200 : 48) * MiB);  // unbounded, it was 105 MB
}

TEST_CASE("hostile: a full heap and then an error ends the process with limit; the daemon lives") {
  running_daemon d(
      "", {{"scripts/memory_full_heap_error.lua", hostile_script("memory_full_heap_error.lua")}});
  client c(d.socket);
  for (int i = 0; i < 2; ++i) {
    json::value r = c.call("spawn", {{"script", "memory_full_heap_error.lua"}, {"wait", true}});
    INFO("reply: " << r);
    CHECK(get(r, "/result/reason") == "limit");
    CHECK(get(r, "/result/kind") == "limit");
    CHECK(has(text(get(r, "/result/message")), "traceback of: boom"));
  }
  CHECK(get(c.call("ping"), "/result") == "pong");
}

TEST_CASE("hostile: colliding short strings received twice each come back as sent, heap flat") {
  // Each string shares its cache set and doorkeeper tag with all the others
  // of its length and takes an entry; a cache that compared less than every
  // byte would hand back another's, one that anchored each would grow the
  // heap by about a MiB.
  auto e = run_lua(hostile_script("memory_string_cache.lua"));
  INFO(e.err.message);
  REQUIRE(e.reason == exit_reason::normal);
  CHECK(*e.results[0].get<std::int64_t>() == 2 * (500 + 5 * 4000));
  auto grown = e.results[1].get<std::int64_t>();
  REQUIRE(grown);
  INFO("heap grew by " << *grown << " bytes");
  CHECK(*grown < 16 * 1024);
}

TEST_CASE("hostile: 20,000 timers stop at limits.timers and are canceled at exit") {
  auto& eng = luad::test::shared_engine();
  std::size_t live_before = eng.clock().live();
  auto e = run_lua(hostile_script("memory_timer_count.lua"));
  INFO(e.err.message);
  REQUIRE(e.reason == exit_reason::normal);
  CHECK(*e.results[0].get<std::int64_t>() == 10000);
  CHECK(eng.clock().live() == live_before);
}

TEST_CASE("hostile: spawns of missing scripts by new names leave the name memory bounded") {
  using luad::runtime::code_cache;
  auto& code = luad::test::shared_engine().scheduler().code();
  // Many short names: bounded by count. Long ones: bounded by bytes.
  for (const char* script : {"memory_spawn_names.lua", "memory_spawn_long_names.lua"}) {
    INFO(script);
    auto e = luad::test::run_file(std::string("tests/hostile/scripts/") + script);
    INFO(e.err.message);
    REQUIRE(e.reason == exit_reason::normal);
    CHECK(*e.results[0].get<std::int64_t>() >= 3000);
    // Each name was resolved (and remembered) before its spawn failed.
    auto stats = code.stats();
    CHECK(stats.resolved > 0);
    CHECK(stats.resolved <= code_cache::resolved_capacity);
    // One entry (two paths of at most PATH_MAX) may pass the byte bound.
    CHECK(stats.resolved_bytes <= code_cache::resolved_capacity_bytes + 3 * 4096);
  }
}

TEST_CASE("hostile: a burst of 8,000 processes of 16 KB does not leave the daemon holding it") {
  // Process heaps come from span_pool, which keeps freed spans for the next
  // burst. Above 64 MiB the watchdog gives them back to the kernel; without
  // that, one burst would pin its peak for the daemon's life.
  namespace span_pool = luad::runtime::span_pool;
  auto& eng = luad::test::shared_engine();
  auto code = luad::runtime::compile(
      "local t = {} for i = 1, 150 do t[i] = {i, i} end require('process').receive('never')",
      "burst.lua");
  const span_pool::stats before = span_pool::read();
  std::vector<luad::runtime::pid> ids;
  for (int i = 0; i < 8000; ++i) {
    auto id = eng.scheduler().spawn(code, {});
    REQUIRE(id);
    ids.push_back(*id);
  }
  auto all_parked = [&] {
    for (auto id : ids) {
      auto* p = eng.scheduler().find(id);
      if (!p) return false;
      bool parked = std::string_view(p->status()) == "receiving";
      p->release_ref();
      if (!parked) return false;
    }
    return true;
  };
  REQUIRE(luad::test::eventually(all_parked, std::chrono::seconds(60)));
  const std::size_t peak = rss_bytes();
  for (auto id : ids) eng.scheduler().kill(id);
  REQUIRE(luad::test::eventually([&] {
    for (auto id : ids) {
      if (auto* p = eng.scheduler().find(id)) {
        p->release_ref();
        return false;
      }
    }
    return true;
  }));
  if constexpr (!luad::runtime::k_pool_blocks) return;  // ASan: heaps are malloc's
  CHECK(luad::test::eventually([] { return span_pool::read().depot_warm <= span_pool::k_keep; },
                               std::chrono::seconds(20)));
  const span_pool::stats after = span_pool::read();
  INFO("trimmed " << (after.trimmed - before.trimmed) / MiB << " MiB; RSS at the peak "
                  << peak / MiB << " MiB, now " << rss_bytes() / MiB << " MiB");
  CHECK(after.trimmed - before.trimmed >= 32 * MiB);  // 8,000 x 16 KB = 125 MiB went back
  CHECK(rss_bytes() + 32 * MiB < peak);
}
