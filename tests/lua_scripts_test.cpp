// Runs every Lua assert script under tests/lua/ as a process; each must return true.
#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>

#include "tests/support.hpp"

TEST_CASE("Lua assert scripts under tests/lua pass") {
  namespace fs = std::filesystem;
  std::vector<fs::path> scripts;
  for (const auto& entry : fs::directory_iterator(fs::path(LUAD_SOURCE_DIR) / "tests" / "lua")) {
    if (entry.path().extension() == ".lua") scripts.push_back(entry.path());
  }
  std::sort(scripts.begin(), scripts.end());
  REQUIRE(scripts.size() >= 3);
  for (const fs::path& path : scripts) {
    std::string rel = "tests/lua/" + path.filename().string();
    CAPTURE(rel);
    auto e = luad::test::run_file(rel);
    CHECK_MESSAGE(e.reason == luad::runtime::exit_reason::normal, e.err.message, "\n",
                  e.err.traceback);
    REQUIRE(e.results.size() == 1);
    CHECK(e.results[0] == luad::runtime::value(true));
  }
}
