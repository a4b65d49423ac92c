// The supervisor started from C++ (as the daemon's config workflows will).
#include "modules/supervisor.hpp"

#include <doctest/doctest.h>

#include <filesystem>
#include <mutex>
#include <string>
#include <vector>

#include "runtime/logging.hpp"

#include "tests/support.hpp"

using luad::runtime::value;

TEST_CASE("a supervisor started from C++ runs its children and takes them down with it") {
  luad::server::engine eng(luad::runtime::scheduler_options::with_workers(2));
  auto dir = std::filesystem::canonical(std::filesystem::path(LUAD_SOURCE_DIR) / "tests" / "lua");
  value::map child{{"name", "c"}, {"script", "children/crasher.lua"}};
  value::map spec{{"strategy", "one_for_one"}, {"children", value::array{value(child)}}};
  auto sup =
      luad::modules::start_supervisor(eng.scheduler(), value(spec), dir.string(), dir.string());
  REQUIRE_MESSAGE(sup.ok(), (sup ? "" : sup.error().message));
  REQUIRE(luad::test::eventually([&] { return eng.scheduler().alive() == 2; }));
  CHECK(eng.scheduler().kill(*sup));
  CHECK(luad::test::eventually([&] { return eng.scheduler().alive() == 0; }));
}

namespace {

// Keeps the fields of the supervisor's "cannot start child" log lines.
struct start_failures final : luad::runtime::log_tap {
  std::mutex mu;
  std::vector<std::string> fields;
  void on_log(const luad::runtime::log_record& rec) noexcept override {
    if (rec.message != "supervisor: cannot start child") return;
    std::lock_guard lock(mu);
    fields.emplace_back(rec.fields);
  }
  std::vector<std::string> seen() {
    std::lock_guard lock(mu);
    return fields;
  }
};

}  // namespace

TEST_CASE("a supervisor refuses children outside its root") {
  start_failures tap;
  luad::runtime::set_log_tap(&tap);
  {
    luad::server::engine eng(luad::runtime::scheduler_options::with_workers(1));
    auto dir = std::filesystem::canonical(std::filesystem::path(LUAD_SOURCE_DIR) / "tests" / "lua");
    // A real script that compiles and would sleep, but lies outside the root.
    std::string outside = (dir / "children" / "sleeper.lua").string();
    std::string root = (dir / "packages").string();
    value::map child{{"name", "c"}, {"script", outside}};
    value::map spec{{"children", value::array{value(child)}}};
    auto sup = luad::modules::start_supervisor(eng.scheduler(), value(spec), root, root);
    REQUIRE_MESSAGE(sup.ok(), (sup ? "" : sup.error().message));
    // The child cannot start, so the supervisor gives up and ends.
    CHECK(luad::test::eventually([&] { return eng.scheduler().alive() == 0; }));
    REQUIRE(luad::test::eventually([&] { return !tap.seen().empty(); }));
  }
  luad::runtime::set_log_tap(nullptr);
  std::vector<std::string> seen = tap.seen();
  CAPTURE(seen[0]);
  CHECK(seen[0].find("permission_denied") != std::string::npos);
  CHECK(seen[0].find("outside the script root") != std::string::npos);
}
