// `luad test` (server/test_runner.cpp) on real test files: the example suite,
// the fixtures in tests/server/luad_test (assertion messages, the virtual
// clock, faked HTTP, a fresh store per test, a stuck test, a file that does
// not compile), JUnit output, --filter, and the usage errors.
#include <doctest/doctest.h>

#include <fstream>
#include <sstream>

#include "server/test_runner.hpp"
#include "tests/support.hpp"

namespace luad::test {

namespace {

struct test_run {
  int code;
  std::string out, err;
};

test_run run(server::test_options opts) {
  std::ostringstream out, err;
  if (opts.limits.memory == 0) opts.limits.memory = 64 << 20;
  int code = server::run_tests(opts, out, err);
  return {code, out.str(), err.str()};
}

const std::string fixtures = std::string(LUAD_SOURCE_DIR) + "/tests/server/luad_test";

}  // namespace

TEST_CASE("luad test: the example suite passes, each test on the virtual clock") {
  server::test_options opts;
  opts.paths = {std::string(LUAD_SOURCE_DIR) + "/examples/testing"};
  // An hour of sleep and a retry backoff: with real sleeps this times out.
  opts.timeout = 20;
  test_run r = run(opts);
  INFO(r.out, r.err);
  CHECK(r.code == server::tests_passed);
  CHECK(has(r.out, "ok    test_retries_a_503_with_backoff"));
  CHECK(has(r.out, "ok    test_an_hour_of_sleep_takes_no_time"));
  CHECK(has(r.out, "7 tests: 7 passed, 0 failed"));
}

TEST_CASE(
    "luad test: failures say what differs, where; a stuck test and a broken file are errors") {
  temp_dir tmp("luad-test-runner");
  server::test_options opts;
  opts.paths = {fixtures};
  opts.junit = (tmp / "results.xml").string();
  opts.timeout = 20;
  test_run r = run(opts);
  INFO(r.out, r.err);
  CHECK(r.code == server::tests_failed);
  // Assertions: a line per test, the diff of tables by path.
  CHECK(has(r.out, "ok    test_passes"));
  CHECK(has(r.out, "FAIL  test_table_diff"));
  CHECK(has(r.out, "assertions_test.lua:21: tables differ:"));
  CHECK(has(r.out, ".b.c: expected 3, got 2"));
  CHECK(has(r.out, ".d: missing (expected 4)"));
  CHECK(has(r.out, ".e: unexpected \"x\""));
  CHECK(has(r.out, "expected an error containing \"another problem\", got"));
  CHECK(has(r.out, "attempt to index a nil value (local 't')"));
  // Every clock and HTTP fixture passes (each needs the fakes to hold).
  for (const char* name :
       {"test_timers_fire_in_deadline_order", "test_an_hour_of_sleep",
        "test_clock_differences_are_exact", "test_a_receive_ends_at_its_message_not_its_timeout",
        "test_receive_timeouts_are_virtual", "test_children_share_the_clock",
        "test_rules_answer_in_order_and_requests_are_recorded",
        "test_an_unmatched_request_fails_clearly", "test_permissions_are_checked_as_live",
        "test_faked_errors", "test_the_store_starts_empty_a", "test_the_store_starts_empty_b",
        "test_spawns_and_requires_beside_itself"}) {
    CHECK_MESSAGE(has(r.out, std::string("ok    ") + name), name);
  }
  CHECK(has(r.out, "ERROR test_waits_for_a_message_nobody_sends"));
  CHECK(has(r.out, "stuck: every process waits"));
  CHECK(has(r.out, "broken/syntax_test.lua\n  ERROR (load)"));
  CHECK(has(r.out, "syntax_test.lua:3: unexpected symbol near 'return'"));
  CHECK(has(r.out, "19 tests: 14 passed, 5 failed"));

  std::ifstream in(opts.junit);
  std::stringstream xml;
  xml << in.rdbuf();
  INFO(xml.str());
  CHECK(has(xml.str(), "<testsuites name=\"luad test\" tests=\"19\" failures=\"3\" errors=\"2\""));
  CHECK(has(xml.str(), "name=\"test_table_diff\""));
  CHECK(has(xml.str(), "<failure message=\""));
  CHECK(has(xml.str(), "expected an error containing &quot;another problem&quot;"));
  CHECK(has(xml.str(), "<error message=\"stuck: every process waits"));
}

TEST_CASE("luad test: --filter runs the matching tests only; a file that cannot load still shows") {
  server::test_options opts;
  opts.paths = {fixtures + "/clock_test.lua", fixtures + "/assertions_test.lua"};
  opts.filter = "clock_test";
  test_run r = run(opts);
  INFO(r.out, r.err);
  CHECK(r.code == server::tests_passed);
  CHECK(has(r.out, "6 tests: 6 passed, 0 failed, 4 filtered out"));
  CHECK_FALSE(has(r.out, "assertions_test"));

  opts.paths = {fixtures};
  r = run(opts);
  CHECK(r.code == server::tests_failed);
  CHECK(has(r.out, "broken/syntax_test.lua\n  ERROR (load)"));

  opts.paths = {fixtures + "/clock_test.lua"};
  opts.filter = "no such test";
  r = run(opts);
  CHECK(r.code == server::tests_usage);
  CHECK(has(r.err, "no test matches --filter 'no such test'"));
}

TEST_CASE("luad test: a file below a --root requires from that root, wherever the run starts") {
  server::test_options opts;
  opts.paths = {fixtures + "/nested"};
  test_run r = run(opts);
  CHECK(r.code == server::tests_failed);  // the folder given is the root: no nested.helper
  CHECK(has(r.out, "module 'nested.helper' not found"));
  opts.roots = {fixtures};
  r = run(opts);
  INFO(r.out, r.err);
  CHECK(r.code == server::tests_passed);
  CHECK(has(r.out, "ok    test_spawns_and_requires_beside_itself"));
}

TEST_CASE("luad test: a missing path or a folder without tests is a usage error") {
  temp_dir tmp("luad-test-empty");
  server::test_options opts;
  opts.paths = {(tmp / "missing").string()};
  test_run r = run(opts);
  CHECK(r.code == server::tests_usage);
  CHECK(has(r.err, "missing: No such file or directory"));

  opts.paths = {tmp.path().string()};
  r = run(opts);
  CHECK(r.code == server::tests_usage);
  CHECK(has(r.err, "no *_test.lua file under"));

  // A file whose folder has a dot cannot be required: said, not crashed.
  tmp.write("v1.2/a_test.lua", "return {test_x = function() end}");
  r = run(opts);
  CHECK(r.code == server::tests_failed);
  CHECK(has(r.out, "cannot be loaded with require"));
}

}  // namespace luad::test
