// The supervisor started from C++ (as the daemon's config workflows will).
#include "modules/supervisor.hpp"

#include <doctest/doctest.h>

#include <filesystem>

#include "tests/support.hpp"

using luad::runtime::value;

TEST_CASE("a supervisor started from C++ runs its children and takes them down with it") {
  luad::server::engine eng(luad::runtime::scheduler_options::with_workers(2));
  auto dir = std::filesystem::canonical(std::filesystem::path(LUAD_SOURCE_DIR) / "tests" / "lua");
  value::map child{{"name", "c"}, {"script", "children/crasher.lua"}};
  value::map spec{{"strategy", "one_for_one"}, {"children", value::array{value(child)}}};
  luad::runtime::error why;
  auto sup = luad::modules::start_supervisor(eng.scheduler(), value(spec), dir.string(),
                                             dir.string(), {}, &why);
  REQUIRE_MESSAGE(static_cast<bool>(sup), why.message);
  REQUIRE(luad::test::eventually([&] { return eng.scheduler().alive() == 2; }));
  CHECK(eng.scheduler().kill(sup));
  CHECK(luad::test::eventually([&] { return eng.scheduler().alive() == 0; }));
}

TEST_CASE("a supervisor refuses children outside its root") {
  luad::server::engine eng(luad::runtime::scheduler_options::with_workers(1));
  auto dir = std::filesystem::canonical(std::filesystem::path(LUAD_SOURCE_DIR) / "tests" / "lua");
  value::map child{{"name", "c"}, {"script", "/etc/hostname"}};
  value::map spec{{"children", value::array{value(child)}}};
  luad::runtime::error why;
  auto sup = luad::modules::start_supervisor(eng.scheduler(), value(spec), dir.string(),
                                             (dir / "children").string(), {}, &why);
  REQUIRE(static_cast<bool>(sup));
  // The child cannot start, so the supervisor gives up and ends.
  CHECK(luad::test::eventually([&] { return eng.scheduler().alive() == 0; }));
}
