// `luad test [PATH...]`: finds users' `*_test.lua` files, runs each test
// function as its own process under the fakes of dispatcher/test_fakes.hpp
// (virtual clock, faked HTTP, a throwaway store) in an engine of its own, and
// reports a line per test, a summary and, if asked, JUnit XML. docs/testing.md.
#pragma once

#include <ostream>
#include <string>
#include <vector>

#include "runtime/limits.hpp"

namespace luad::server {

struct test_options {
  /// Test files and folders (searched for *_test.lua); empty: `roots`.
  std::vector<std::string> paths;
  /// Script roots (--root, or the config's [scripts] roots): a test file
  /// below one is required from it, as the daemon would load it; any other
  /// from the folder given, or its own folder. Also where to look when no
  /// path is given (else ".").
  std::vector<std::string> roots;
  /// Runs only tests whose id ("path::name") contains this text.
  std::string filter;
  /// Writes JUnit XML here when set.
  std::string junit;
  /// Granted to every test, beside the suite's own `permissions` (--allow).
  std::vector<std::string> permissions;
  runtime::limits limits;
  /// Real seconds one test may take before it is stopped and fails.
  double timeout = 60;
  /// Prints the traceback of each failure too.
  bool verbose = false;
};

/// Exit codes of `luad test`.
enum test_status : int {
  tests_passed = 0,  ///< every test selected passed
  tests_failed = 1,  ///< a test failed, or a test file could not be loaded
  tests_usage = 2,   ///< bad command line, a path that does not exist, or no test found
};

/// Runs the tests; results on `out`, problems with the command on `err`.
int run_tests(const test_options& opts, std::ostream& out, std::ostream& err);

}  // namespace luad::server
