// The doctest entry point of luad_tests. The engine's own log lines (store
// write failures, dispatcher warnings) are quiet below `error` by default so
// that a failure's report is not buried under expected warnings from fault
// tests; LUAD_TEST_LOG=debug|info|warn|error shows more. A run that selects
// no test case fails (CTest runs each case by name: a name that matches
// nothing must not pass).
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdlib>
#include <iostream>
#include <string_view>

#include "runtime/logging.hpp"

namespace {

// Records how many test cases passed the run's filters; -1 when no test ran
// (a query such as --list-test-cases).
struct selection_counter : doctest::IReporter {
  static inline int selected = -1;

  explicit selection_counter(const doctest::ContextOptions& /*unused*/) {}
  void test_run_end(const doctest::TestRunStats& s) override {
    selected = static_cast<int>(s.numTestCasesPassingFilters);
  }
  void report_query(const doctest::QueryData& /*unused*/) override {}
  void test_run_start() override {}
  void test_case_start(const doctest::TestCaseData& /*unused*/) override {}
  void test_case_reenter(const doctest::TestCaseData& /*unused*/) override {}
  void test_case_end(const doctest::CurrentTestCaseStats& /*unused*/) override {}
  void test_case_exception(const doctest::TestCaseException& /*unused*/) override {}
  void subcase_start(const doctest::SubcaseSignature& /*unused*/) override {}
  void subcase_end() override {}
  void log_assert(const doctest::AssertData& /*unused*/) override {}
  void log_message(const doctest::MessageData& /*unused*/) override {}
  void test_case_skipped(const doctest::TestCaseData& /*unused*/) override {}
};

}  // namespace

DOCTEST_REGISTER_LISTENER("selection_counter", 0, selection_counter);

int main(int argc, char** argv) {
  using luad::runtime::log_level;
  log_level level = log_level::error;
  if (const char* env = std::getenv("LUAD_TEST_LOG")) {
    for (log_level l : {log_level::debug, log_level::info, log_level::warn, log_level::error})
      if (std::string_view(env) == luad::runtime::level_name(l)) level = l;
  }
  luad::runtime::init_logging(level);
  int status = doctest::Context(argc, argv).run();
  if (status == 0 && selection_counter::selected == 0) {
    std::cerr << "luad_tests: no test case matches the filters\n";
    return 1;
  }
  return status;
}
