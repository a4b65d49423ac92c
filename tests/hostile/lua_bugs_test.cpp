// Lua 5.4.4's known bugs (fixed upstream by 5.4.7) that a sandboxed script can
// reach: each upstream reproducer runs in a real process through the scheduler
// and must end normally, with the sandbox's guard in the way where there is one.
#include <doctest/doctest.h>

#include <chrono>
#include <clocale>
#include <cstring>
#include <string>

#include "runtime/bytecode_check.hpp"
#include "runtime/code.hpp"
#include "runtime/process.hpp"
#include "runtime/sandbox.hpp"
#include "tests/support.hpp"

// Cases with wall-clock bounds run alone, not beside other tests on the same
// cores (ctest RUN_SERIAL: cmake/doctest_add_tests.cmake).
TEST_SUITE_BEGIN("serial");

using luad::runtime::exit_reason;
using luad::runtime::value;
using luad::test::run_file;
using luad::test::run_lua;

namespace {

// Runs a Lua snippet that must end normally and return true.
void returns_true(const char* source) {
  auto e = run_lua(source);
  INFO(e.err.message);
  REQUIRE(e.reason == exit_reason::normal);
  REQUIRE(e.results.size() == 1);
  CHECK(e.results[0] == value(true));
}

}  // namespace

TEST_CASE("hostile: nested coroutine.close stops before the C stack overflows (1e64c139)") {
  // Without the guard this SIGSEGVs the test binary (15,000 levels, ~700 B each).
  auto e = run_file("tests/hostile/scripts/luabugs_close_chain.lua");
  INFO(e.err.message);
  REQUIRE(e.reason == exit_reason::normal);
  REQUIRE(e.results.size() == 1);
  auto count = e.results[0].get<std::int64_t>();
  REQUIRE(count);
  CHECK(*count <= luad::runtime::max_reset_depth + 1);
}

TEST_CASE("hostile: a long chain of table reads is refused at compile and by load (7923dbbf)") {
  // Unguarded, naming the chain's end in the error takes seconds of C (quadratic
  // in its length) and a longer chain overflows the C stack.
  auto e = run_file("tests/hostile/scripts/luabugs_read_chain.lua");
  INFO(e.err.message);
  CHECK(e.reason == exit_reason::normal);

  std::string src = "local a = {} a.x = a return a";
  for (int i = 0; i < 40000; ++i) src += ".x";
  src += " + 1";
  auto start = std::chrono::steady_clock::now();
  auto chunk = luad::runtime::compile(src, "chain.lua");
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(1));
  REQUIRE(chunk->compile_error);
  CHECK(chunk->compile_error->kind == luad::runtime::error_kind::invalid);
  CHECK(luad::test::has(chunk->compile_error->message, "chain of table reads"));
  // The same chain one short of the limit compiles; keys through GETTABLE count too.
  std::string ok = "local a, k = {}, 'x' a.x = a return a";
  for (int i = 0; i < luad::runtime::max_read_chain; ++i) ok += "[k]";
  CHECK_FALSE(luad::runtime::compile(ok, "ok.lua")->compile_error);
  CHECK(luad::runtime::compile(ok + "[k]", "long.lua")->compile_error);
}

TEST_CASE("hostile: the read-chain check refuses malformed dumps instead of reading past them") {
  auto chunk =
      luad::runtime::compile("local t = {1, 'two', 3.0} return function() return t end", "f.lua");
  REQUIRE_FALSE(chunk->compile_error);
  const std::string& d = chunk->bytecode;
  CHECK(luad::runtime::check_read_chains(d.data(), d.size()) == nullptr);
  for (std::size_t cut = 0; cut < d.size(); cut += 7) {
    CHECK(luad::runtime::check_read_chains(d.data(), cut) != nullptr);
  }
}

TEST_CASE("hostile: the wrong-code bugs Debian patched stay patched (1f3c6f45, CVE-2022-28805)") {
  // Unpatched, a <const> _ENV made the compiler read past an array (heap overflow).
  returns_true(R"lua(
    local function foo() local _ENV <const> = 11; X = "hi" end
    local ok, msg = pcall(foo)
    return not ok and msg:find("number") ~= nil)lua");
}

TEST_CASE("hostile: wrong code for bitwise constants stays inside the process (c764ca71)") {
  // 5.4.4 computes a wrong value here (reading another constant of the same
  // function, never outside it); the process only gets its own wrong answer.
  auto e = run_lua(R"lua(
    local code = {"local x = {"}
    for i = 1, 257 do code[#code + 1] = i .. ".1," end
    code[#code + 1] = "};"
    code = table.concat(code)
    local f = load(code .. "return (1 ~ (2 or 3))")
    return f(), 1 ~ 2)lua");
  REQUIRE(e.reason == exit_reason::normal);
  REQUIRE(e.results.size() == 2);
  CHECK(e.results[1] == value(std::int64_t{3}));
  CHECK(e.results[0].get<std::int64_t>());  // some integer: 0 on 5.4.4, 3 once fixed
}

TEST_CASE(
    "hostile: 'break' out of a generic for with a closing value stays inside the process "
    "(997f11f5)") {
  // 5.4.4 closes at the wrong level here: an error or a late close, in this process only.
  auto e = run_lua(R"lua(
    local closed = false
    local o1 = setmetatable({}, {__close = function() closed = true end})
    local function test()
      for k in next, {}, nil, o1 do
        local function f() return k end
        break
      end
      return closed
    end
    return pcall(test))lua");
  CHECK((e.reason == exit_reason::normal || e.reason == exit_reason::error));
}

TEST_CASE("hostile: string comparison runs in the C locale (f623b969 needs another collation)") {
  // l_strcmp reads past a string only when strcoll calls strings of different
  // lengths equal, which the "C" collation never does; nothing in luad sets one.
  CHECK(std::strcmp(std::setlocale(LC_COLLATE, nullptr), "C") == 0);
  returns_true(R"lua(return "a\0b" < "a\0c" and not ("a\0" < "a") and "a" < "a\0")lua");
}

TEST_SUITE_END();
