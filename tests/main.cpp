// The doctest entry point of luad_tests. The engine's own log lines (store
// write failures, dispatcher warnings) are quiet below `error` by default so
// that a failure's report is not buried under expected warnings from fault
// tests; LUAD_TEST_LOG=debug|info|warn|error shows more.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdlib>
#include <string_view>

#include "runtime/logging.hpp"

int main(int argc, char** argv) {
  using luad::runtime::log_level;
  log_level level = log_level::error;
  if (const char* env = std::getenv("LUAD_TEST_LOG")) {
    for (log_level l : {log_level::debug, log_level::info, log_level::warn, log_level::error})
      if (std::string_view(env) == luad::runtime::level_name(l)) level = l;
  }
  luad::runtime::init_logging(level);
  return doctest::Context(argc, argv).run();
}
