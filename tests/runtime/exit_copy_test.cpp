// runtime/exit_copy: what a process leaves behind is bounded (results by
// limits.exit_bytes, error texts by exit_text_bytes) and copying it never
// takes the daemon down.
#include "runtime/exit_copy.hpp"

#include <doctest/doctest.h>

#include "runtime/process.hpp"
#include "tests/support.hpp"

using luad::runtime::error_kind;
using luad::runtime::exit_reason;
using luad::runtime::exit_text_bytes;
using luad::test::has;
using luad::test::run_lua;

TEST_CASE("results past exit_bytes end the process with limit; within it they are kept") {
  luad::runtime::spawn_options opts;
  opts.ctx.limits.exit_bytes = 64 << 10;
  auto e = run_lua("return string.rep('x', 100 << 10)", opts);
  CHECK(e.reason == exit_reason::limit);
  CHECK(e.err.kind == error_kind::limit);
  CHECK(has(e.err.message, "exit limit of 65536 bytes"));
  CHECK(e.results.empty());
  // Several results share the budget.
  e = run_lua("local s = string.rep('x', 40 << 10) return s, s", opts);
  CHECK(e.reason == exit_reason::limit);
  e = run_lua("return string.rep('x', 40 << 10), 2", opts);
  CHECK(e.reason == exit_reason::normal);
  CHECK(e.results.size() == 2);
  // Escapes count at their printed size: 20 KiB of control bytes print as 120 KiB.
  e = run_lua("return string.rep('\\1', 20 << 10)", opts);
  CHECK(e.reason == exit_reason::limit);
}

TEST_CASE("error messages and tracebacks an exit keeps are cut to a bounded size") {
  auto e = run_lua("error(string.rep('e', 1 << 20), 0)");
  CHECK(e.reason == exit_reason::error);
  CHECK(e.err.message.size() <= exit_text_bytes + 20);
  CHECK(has(e.err.message, "...(truncated)"));
  e = run_lua("require('process').exit(string.rep('q', 1 << 20))");
  CHECK(e.err.message.size() <= exit_text_bytes + 20);
}
