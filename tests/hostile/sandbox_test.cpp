// The sandbox's holes, tried as a hostile script would: finalisers by every
// path, and the real table behind a read-only library proxy.
#include <doctest/doctest.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "runtime/process.hpp"
#include "tests/support.hpp"

using luad::runtime::exit_reason;
using luad::runtime::value;
using luad::test::run_lua;

namespace {

// Runs the hostile script at `relative` (to the source tree) with `args`.
luad::runtime::exit_info run_script(const char* relative, std::vector<value> args = {}) {
  std::ifstream in(relative, std::ios::binary);
  REQUIRE(in);
  std::ostringstream text;
  text << in.rdbuf();
  luad::runtime::spawn_options o;
  o.args = std::move(args);
  return run_lua(text.str(), std::move(o));
}

}  // namespace

TEST_CASE("hostile: no path gives an object a finaliser") {
  // "count": a finaliser that runs counts instead of looping for ever.
  auto e = run_script("tests/hostile/scripts/sandbox_gc_paths.lua", {value("count")});
  INFO(e.err.message);
  REQUIRE(e.reason == exit_reason::normal);
  REQUIRE(e.results.size() == 1);
  CHECK(e.results[0] == value(std::int64_t{0}));
}

TEST_CASE("hostile: a __gc added through __index during setmetatable's check is never marked") {
  // The old check read mt.__gc through __index, which rawset it: the object was
  // marked, and its finaliser ran with hooks off.
  auto e = run_lua(R"lua(
    local ran = 0
    local mt = setmetatable({}, {__index = function(t, k)
      rawset(t, k, function() ran = ran + 1 end)
    end})
    local ok = pcall(setmetatable, {}, mt)
    collectgarbage() collectgarbage()
    return ok, ran, rawget(mt, "__gc") == nil)lua");
  INFO(e.err.message);
  REQUIRE(e.reason == exit_reason::normal);
  REQUIRE(e.results.size() == 3);
  CHECK(e.results[1] == value(std::int64_t{0}));
}

TEST_CASE("hostile: pairs over a library or module hands out only the read-only proxy") {
  auto e = run_script("tests/hostile/scripts/sandbox_pairs_write.lua");
  INFO(e.err.message);
  CHECK(e.reason == exit_reason::normal);
  // The attack from the issue, verbatim.
  e = run_lua(R"lua(
    local _, t = pairs(string)
    local ok = pcall(function() t.upper = function() return "pwned" end end)
    return ok, ("x"):upper())lua");
  REQUIRE(e.reason == exit_reason::normal);
  REQUIRE(e.results.size() == 2);
  CHECK(e.results[0] == value(false));
  CHECK(e.results[1] == value("X"));
}
