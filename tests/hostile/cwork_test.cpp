// Hostile: C work whose cost is not bounded by memory (backtracking patterns,
// string.rep of nothing, table loops over nils, slow compiles) ends by itself
// or at a kill within 100 ms, and never stalls the daemon's socket.
#include <doctest/doctest.h>

#include <chrono>
#include <string>
#include <thread>

#include "runtime/bounded_lib.hpp"
#include "runtime/code.hpp"
#include "runtime/process.hpp"
#include "tests/hostile/daemon_process.hpp"
#include "tests/server/daemon_support.hpp"
#include "tests/support.hpp"

// Cases with wall-clock bounds run alone, not beside other tests on the same
// cores (ctest RUN_SERIAL: cmake/doctest_add_tests.cmake).
TEST_SUITE_BEGIN("serial");

using namespace std::chrono_literals;
using luad::runtime::error_kind;
using luad::runtime::exit_reason;
using luad::test::has;
using luad::test::run_lua;
using clk = std::chrono::steady_clock;

namespace {

double ms_since(clk::time_point t) {
  return std::chrono::duration<double, std::milli>(clk::now() - t).count();
}

// Spawns `source`, lets it get well into its C call, kills it, and returns
// how long the kill took to end it (reason killed) in milliseconds.
double kill_latency(const std::string& source) {
  auto& eng = luad::test::shared_engine();
  luad::runtime::pid id;
  auto fut = luad::test::spawn_lua(eng, source, {}, &id);
  // Not a wait for a condition: the time the script needs to enter its C call
  // (it builds a few strings first); a kill that came earlier would also pass.
  std::this_thread::sleep_for(200ms);
  REQUIRE_MESSAGE(fut.wait_for(0s) == std::future_status::timeout, "ended before the kill");
  auto t0 = clk::now();
  CHECK(eng.scheduler().kill(id));
  auto e = luad::test::wait_exit(fut, std::chrono::seconds(10));
  double took = ms_since(t0);
  CHECK(e.reason == exit_reason::killed);
  return took;
}

// A budget no test reaches, so only the kill can end a match.
struct unlimited_patterns {
  std::uint64_t saved = luad::runtime::pattern_budget();
  unlimited_patterns() { luad::runtime::set_pattern_budget(std::uint64_t{1} << 50); }
  ~unlimited_patterns() { luad::runtime::set_pattern_budget(saved); }
};

// A chunk under the default 1 MiB whose parse is quadratic: each backward
// `goto aN` scans the N labels before it (~0.7 s on an idle machine).
const char* const k_goto_chunk = R"(
  local t = {}
  for i = 1, 32000 do t[i] = "::a" .. i .. ":: goto a" .. i end
  local src = "local function f() " .. table.concat(t, " ") .. " end"
)";

std::string goto_chunk() {
  std::string src = "local function f() ";
  for (int i = 1; i <= 32000; ++i) {
    std::string n = std::to_string(i);
    src += "::a" + n + ":: goto a" + n + " ";
  }
  return src + "end";
}

}  // namespace

TEST_CASE("hostile: a backtracking find, match, gmatch or gsub ends by itself with a limit error") {
  for (const char* call : {"s:find('.-.-.-b')", "s:match('(.-)(.-)(.-)b')", "s:gmatch('.-.-.-b')()",
                           "s:gsub('.-.-.-b', 'x')"}) {
    auto t0 = clk::now();
    auto e = run_lua(std::string("local s = ('a'):rep(500) return ") + call);
    INFO(call << ": " << e.err.message);
    CHECK(e.reason == exit_reason::error);
    CHECK(e.err.kind == error_kind::limit);
    CHECK(has(e.err.message, "pattern too complex"));
    CHECK(ms_since(t0) < (luad_hostile::sanitizer_build ? 10000 : 2000));  // sanitizers: ~5x slower
  }
}

TEST_CASE("hostile: a kill lands within 100 ms during a backtracking pattern call") {
  unlimited_patterns guard;
  for (const char* call : {"s:find('.-.-.-.-b')", "s:gsub('.-.-.-.-b', 'x')"}) {
    INFO(call);
    CHECK(kill_latency(std::string("local s = ('a'):rep(2000) return ") + call) < 100);
  }
}

TEST_CASE("hostile: string.rep of an empty string returns at once") {
  auto t0 = clk::now();
  auto e = run_lua("return #(''):rep(1e10), #(''):rep(1 << 60, ''), ('ab'):rep(3, '-')");
  CHECK(ms_since(t0) < 500);
  REQUIRE(e.reason == exit_reason::normal);
  CHECK(e.results[0] == luad::runtime::value(std::int64_t{0}));
  CHECK(e.results[2] == luad::runtime::value("ab-ab-ab"));
}

TEST_CASE("string.rep by doubling copies: equal to a concatenation for every count and separator") {
  // ("x"):rep(10 << 20) was 10M one-byte copies, 80 ms in one C call; ours
  // doubles what it wrote. Checked against table.concat piece by piece.
  auto e = run_lua(R"(
    local bad = 0
    for _, s in ipairs({"", "x", "ab", "hello"}) do
      for _, sep in ipairs({"", "-", "<=>"}) do
        for n = -1, 40 do
          local t = {}
          for i = 1, n do t[i] = s end
          if s:rep(n, sep) ~= table.concat(t, sep) then bad = bad + 1 end
        end
      end
    end
    local big = ("ab"):rep(1 << 20, ",")
    local ok, err = pcall(string.rep, "ab", math.maxinteger)
    return bad, #big, big:sub(-7), select(2, big:gsub(",", ",")), ok, tostring(err))");
  REQUIRE_MESSAGE(e.reason == exit_reason::normal, e.err.message);
  CHECK(e.results[0] == luad::runtime::value(std::int64_t{0}));
  CHECK(e.results[1] == luad::runtime::value(std::int64_t{(1 << 20) * 3 - 1}));
  CHECK(e.results[2] == luad::runtime::value("b,ab,ab"));
  CHECK(e.results[3] == luad::runtime::value(std::int64_t{(1 << 20) - 1}));
  CHECK(e.results[4] == luad::runtime::value(false));
  const std::string* err = e.results[5].get<std::string>();
  REQUIRE(err);
  CHECK(has(*err, "resulting string too large"));
}

TEST_CASE("hostile: table.move, insert and remove looping over nils are killed within 100 ms") {
  CHECK(kill_latency("table.move({}, 1, 1e12, 2)") < 100);
  const char* huge = "setmetatable({}, {__len = function() return math.maxinteger - 1 end})";
  CHECK(kill_latency(std::string("table.insert(") + huge + ", 1, 'x')") < 100);
  CHECK(kill_latency(std::string("table.remove(") + huge + ", 1)") < 100);
}

TEST_CASE("hostile: table.sort and concat over phantom elements are killed within 100 ms") {
  // C-function metamethods: no Lua runs, so only the port's polls can stop them.
  CHECK(kill_latency("table.sort(setmetatable({}, {__len = function() return 2^31 - 2 end,"
                     " __index = tostring, __newindex = type}))") < 100);
  CHECK(kill_latency("table.concat(setmetatable({}, {__len = function() return 2^40 end,"
                     " __index = rawlen}))") < 100);
}

TEST_CASE("hostile: load() refuses a source over the limit, and a kill lands during a slow load") {
  auto e = run_lua(R"(
    local f, err = load(("x = 1 "):rep(400000))
    assert(f == nil and err:find("more than the limit of 1048576", 1, true), err)
    local parts = {"return 1", (" "):rep(1 << 20)}
    f, err = load(function() return table.remove(parts, 1) end)
    assert(f == nil and err:find("more than the limit", 1, true), err)
    return load("return 42")()
  )");
  REQUIRE(e.reason == exit_reason::normal);
  CHECK(e.results[0] == luad::runtime::value(std::int64_t{42}));
  // Under the default 1 MiB limit, yet seconds of parsing.
  CHECK(kill_latency(std::string(k_goto_chunk) + " return load(src)") < 100);
}

TEST_CASE("hostile: a slow compile on the daemon does not stall other clients") {
  using namespace luad_test;
  std::string src = goto_chunk();
  REQUIRE(src.size() < luad::runtime::default_source_limit);
  running_daemon d("", {{"scripts/slow.lua", src}});
  auto saved = luad::runtime::compile_deadline();
  luad::runtime::set_compile_deadline(300ms);
  client a(d.socket), b(d.socket);
  auto t0 = clk::now();
  // A script the code cache has not seen: read and compiled on the compile pool.
  std::int64_t id = a.request("spawn", {{"script", "slow.lua"}, {"wait", true}});
  double worst = 0;
  for (int i = 0; i < 5; ++i) {  // answered while the compile runs
    auto t = clk::now();
    CHECK(get(b.call("ping"), "/result") == "pong");
    worst = std::max(worst, ms_since(t));
  }
  double pings_done = ms_since(t0);
  json::value r = a.next();
  double spawn_done = ms_since(t0);
  luad::runtime::set_compile_deadline(saved);
  INFO("reply: " << r << ", worst ping " << worst << " ms");
  CHECK(worst < 100);
  CHECK(pings_done < spawn_done);  // the pings did not wait for the compile
  CHECK(get(r, "/id") == id);
  CHECK(get(r, "/result/kind") == "limit");
  CHECK(has(text(get(r, "/result/message")), "compile took longer than 0.3 s"));
  CHECK(spawn_done < 2000);
}

TEST_CASE("hostile: a submission over [limits] source is refused before compiling") {
  using namespace luad_test;
  running_daemon d("", {}, "source = 1000\n");
  client c(d.socket);
  json::value r = c.call("spawn", {{"source", "return 1 --" + std::string(1000, '-')}});
  CHECK(has(message_of(r), "more than the limit of 1000"));
  r = c.call("spawn", {{"source", "return 1"}, {"wait", true}});
  CHECK(get(r, "/result/results") == json::array{1});
  luad::runtime::set_source_limit(luad::runtime::default_source_limit);
}

TEST_SUITE_END();
