// Attacks on `luad test` (scripts in tests/hostile/luad_test): a test that
// never yields ends at --timeout and the next one runs; one that fills its
// heap ends at its limit; fakes and recorded requests are bounded; a busy
// child holds the virtual clock back instead of being overtaken by it.
#include <doctest/doctest.h>

#include <initializer_list>
#include <sstream>

#include "server/test_runner.hpp"
#include "tests/support.hpp"

namespace luad::test {

namespace {

server::test_options hostile_options(std::initializer_list<const char*> files, int timeout) {
  server::test_options opts;
  for (const char* f : files)
    opts.paths.push_back(std::string(LUAD_SOURCE_DIR) + "/tests/hostile/luad_test/" + f);
  opts.timeout = timeout;
  opts.limits.memory = 64 << 20;
  return opts;
}

}  // namespace

TEST_CASE("hostile luad test: a spinning test ends at --timeout, a heap-filling one at its limit") {
  // Two runs: the spinner waits out its whole timeout, so it gets a short
  // one; filling 64 MiB takes 4.7 s under ThreadSanitizer on a host whose
  // fresh memory is slow (its shadow is four times the heap, 5 Dec), so the
  // heap filler gets a long one, which it must not reach.
  std::ostringstream out, err;
  int code = server::run_tests(hostile_options({"spin_test.lua"}, 2), out, err);
  INFO(out.str(), err.str());
  CHECK(code == server::tests_failed);
  CHECK(has(out.str(), "ERROR test_spins_forever"));
  CHECK(has(out.str(), "timed out after 2 s of real time"));
  CHECK(has(out.str(), "ok    test_after_the_spinner"));
  CHECK(has(out.str(), "2 tests: 1 passed, 1 failed"));

  std::ostringstream heap_out, heap_err;
  code = server::run_tests(hostile_options({"heap_test.lua"}, 120), heap_out, heap_err);
  INFO(heap_out.str(), heap_err.str());
  CHECK(code == server::tests_failed);
  CHECK(has(heap_out.str(), "ERROR test_fills_the_heap"));
  CHECK(has(heap_out.str(), "limit: "));
  CHECK(!has(heap_out.str(), "timed out"));
  CHECK(has(heap_out.str(), "1 test: 0 passed, 1 failed"));
}

TEST_CASE(
    "hostile luad test: fakes and recorded requests are bounded; a busy child holds the clock") {
  // (10,050 faked requests take 74 ms in a release build, nearly 2 s under
  // ASan's Debug build at -O0, and 2.4 s under ThreadSanitizer: 55 s there
  // before runtime/yield.cpp let TSan see Lua's longjmps, when every stack
  // trace it stored for an allocation had grown thousands of frames deep.)
  auto opts = hostile_options({"fakes_flood_test.lua"}, sanitizer_build ? 20 : 2);
  std::ostringstream out, err;
  int code = server::run_tests(opts, out, err);
  INFO(out.str(), err.str());
  CHECK(code == server::tests_passed);
  CHECK(has(out.str(), "ok    test_rules_are_bounded"));
  CHECK(has(out.str(), "ok    test_recorded_requests_are_bounded"));
  CHECK(has(out.str(), "ok    test_a_busy_child_only_delays_the_clock"));
  CHECK(has(out.str(), "3 tests: 3 passed, 0 failed"));
}

}  // namespace luad::test
