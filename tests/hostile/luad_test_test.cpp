// Attacks on `luad test` (scripts in tests/hostile/luad_test): a test that
// never yields ends at --timeout and the next one runs; one that fills its
// heap ends at its limit; fakes and recorded requests are bounded; a busy
// child holds the virtual clock back instead of being overtaken by it.
#include <doctest/doctest.h>

#include <sstream>

#include "server/test_runner.hpp"
#include "tests/support.hpp"

namespace luad::test {

TEST_CASE("hostile luad test: spinning, heap-filling and flooding tests are contained") {
  server::test_options opts;
  opts.paths = {std::string(LUAD_SOURCE_DIR) + "/tests/hostile/luad_test"};
  // (10,000 faked requests take more than 2 s under ThreadSanitizer, and
  // nearly 2 s under ASan's Debug build.)
  opts.timeout = sanitizer_build ? 20 : 2;
  opts.limits.memory = 64 << 20;
  std::ostringstream out, err;
  int code = server::run_tests(opts, out, err);
  INFO(out.str(), err.str());
  CHECK(code == server::tests_failed);
  CHECK(has(out.str(), "ERROR test_spins_forever"));
  CHECK(has(out.str(),
            sanitizer_build ? "timed out after 20 s" : "timed out after 2 s of real time"));
  CHECK(has(out.str(), "ok    test_after_the_spinner"));
  CHECK(has(out.str(), "ERROR test_fills_the_heap"));
  CHECK(has(out.str(), "limit: "));
  CHECK(has(out.str(), "ok    test_rules_are_bounded"));
  CHECK(has(out.str(), "ok    test_recorded_requests_are_bounded"));
  CHECK(has(out.str(), "ok    test_a_busy_child_only_delays_the_clock"));
  CHECK(has(out.str(), "6 tests: 4 passed, 2 failed"));
}

}  // namespace luad::test
