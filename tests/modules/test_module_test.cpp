// The `test` module's declaration: each function its Lua part documents for
// `luad types` (script_manifest) is defined by that part, and it is not in
// the daemon's module list. Its behaviour is tested through `luad test`
// (tests/server/test_runner_test.cpp).
#include <doctest/doctest.h>

#include <algorithm>

#include "modules/modules.hpp"
#include "server/engine.hpp"
#include "tests/support.hpp"

namespace luad::test {

TEST_CASE("test module: its Lua part defines every function its manifest lists") {
  server::engine_options eo;
  eo.scheduler = runtime::scheduler_options::with_workers(1);
  eo.scheduler.modules = modules::with_test();
  server::engine eng(std::move(eo));
  auto fut = spawn_lua(eng, R"(
    local t, names = require("test"), {}
    for k, v in pairs(t) do if type(v) == "function" then names[#names + 1] = k end end
    return table.concat(names, " ")
  )");
  runtime::exit_info info = wait_exit(fut);
  REQUIRE(info.reason == runtime::exit_reason::normal);
  std::string names = " " + *info.results.at(0).get<std::string>() + " ";
  for (const runtime::function_type& f : modules::test_module.script_manifest)
    CHECK_MESSAGE(has(names, std::string(" ") + f.name + " "), f.name);
  CHECK(!modules::test_module.script_manifest.empty());
  auto daemon = modules::all();
  CHECK(std::find(daemon.begin(), daemon.end(), &modules::test_module) == daemon.end());
}

}  // namespace luad::test
