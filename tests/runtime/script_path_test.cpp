// runtime/script_path: lexically_normal and weakly_canonical give what
// std::filesystem gives, for every name built from a set of awkward parts
// (dots, empty parts, files used as folders, links up, dangling and looping
// links, missing names), against absolute and relative bases; and a name of
// two thousand components resolves the same.
#include "runtime/script_path.hpp"

#include <doctest/doctest.h>
#include <unistd.h>

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "tests/support.hpp"

namespace {

namespace fs = std::filesystem;
using luad::test::temp_dir;

/// What one resolver gave: a path, or the error code it threw.
struct outcome {
  std::optional<std::string> path;
  std::error_code error;
  bool operator==(const outcome&) const = default;
};

outcome by_std(const std::string& base, const std::string& script) {
  try {
    return {fs::weakly_canonical(fs::path(base) / script).string(), {}};
  } catch (const fs::filesystem_error& e) {
    return {std::nullopt, e.code()};
  }
}

outcome by_ours(const std::string& base, const std::string& script) {
  try {
    return {luad::runtime::weakly_canonical(base, script), {}};
  } catch (const fs::filesystem_error& e) {
    return {std::nullopt, e.code()};
  }
}

std::string shown(const outcome& o) { return o.path ? *o.path : "throws " + o.error.message(); }

/// Every name of up to `depth` parts from `parts`, joined by '/'.
std::vector<std::string> names_from(const std::vector<std::string>& parts, int depth) {
  std::vector<std::string> names{""};
  std::vector<std::string> last{""};
  for (int d = 0; d < depth; ++d) {
    std::vector<std::string> next;
    for (const std::string& n : last) {
      for (const std::string& p : parts) next.push_back(n.empty() ? p : n + "/" + p);
    }
    names.insert(names.end(), next.begin(), next.end());
    last = std::move(next);
  }
  return names;
}

// Changes the working folder for one scope (relative bases resolve from it).
struct working_folder {
  fs::path before = fs::current_path();
  explicit working_folder(const fs::path& p) { fs::current_path(p); }
  ~working_folder() { fs::current_path(before); }
};

}  // namespace

TEST_CASE("script_path: lexically_normal is std::filesystem's") {
  std::vector<std::string> parts{"a", "..", ".", "", "b"};
  int compared = 0;
  for (const std::string& name : names_from(parts, 5)) {
    for (const std::string& path : {name, "/" + name, "//" + name, name + "/"}) {
      INFO("path '", path, "'");
      CHECK(luad::runtime::lexically_normal(path) == fs::path(path).lexically_normal().string());
      ++compared;
    }
  }
  CHECK(compared > 10'000);
}

TEST_CASE("script_path: weakly_canonical is std::filesystem's, links and errors included") {
  temp_dir t("script-path");
  fs::create_directories(t / "d/sub");
  t.write("d/f.lua", "return 1");
  fs::create_directory_symlink("..", t / "d/up");
  fs::create_symlink("nowhere", t / "d/dangling");
  fs::create_symlink("loop", t / "d/loop");  // stat says ELOOP: both must throw
  fs::create_symlink("f.lua", t / "d/link.lua");

  std::vector<std::string> parts{"sub", "f.lua",   "up",       "..",   ".",
                                 "",    "missing", "dangling", "loop", "link.lua"};
  const std::string base = (t / "d").string();
  int compared = 0, threw = 0;
  for (const std::string& name : names_from(parts, 3)) {
    for (const std::string& script : {name, name + "/", name + "//x.lua"}) {
      outcome want = by_std(base, script);
      INFO("script '", script, "': std gives ", shown(want));
      CHECK(by_ours(base, script) == want);
      ++compared;
      if (!want.path) ++threw;
    }
  }
  CHECK(compared > 3'000);
  CHECK(threw > 0);  // the looping link was reached

  // A relative base, and an absolute script that ignores the base.
  working_folder here(t.path());
  for (std::string script : {"f.lua", "up/d/sub/../f.lua", "missing/../f.lua", "../x"}) {
    INFO("relative base, script '", script, "'");
    CHECK(by_ours("d", script) == by_std("d", script));
    CHECK(by_ours("nothere", script) == by_std("nothere", script));
  }
  CHECK(by_ours(base, base + "/up/d/f.lua") == by_std(base, base + "/up/d/f.lua"));
  CHECK(by_ours("", "") == by_std("", ""));
}

TEST_CASE("script_path: a name of two thousand components resolves as std::filesystem's does") {
  temp_dir t("script-path");
  fs::create_directories(t / "d");
  std::string missing, dots, back;
  for (int i = 0; i < 1900; ++i) missing += "x/";
  for (int i = 0; i < 1900; ++i) dots += "./";
  for (int i = 0; i < 600; ++i) back += "d/../";
  for (const std::string& script : {missing + "1.lua", dots + "d/1.lua", back + "nope/1.lua"}) {
    outcome want = by_std(t.path().string(), script);
    REQUIRE(want.path);
    CHECK(by_ours(t.path().string(), script) == want);
  }
  // Past PATH_MAX the file system refuses the name: both throw the same.
  std::string too_long = missing + missing + "1.lua";
  outcome want = by_std(t.path().string(), too_long);
  CHECK_FALSE(want.path);
  CHECK(by_ours(t.path().string(), too_long) == want);
}
