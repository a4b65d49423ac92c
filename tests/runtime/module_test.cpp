// The module registry: every declared module agrees with its manifest.
#include "runtime/module.hpp"

#include <doctest/doctest.h>

#include <cstring>
#include <set>
#include <string>

#include "modules/modules.hpp"
#include "runtime/yield.hpp"
#include "tests/support.hpp"

using namespace luad::runtime;

TEST_CASE("every module's exports match its type manifest") {
  const module_registry& mods = luad::test::shared_engine().scheduler().modules();
  CHECK(mods.list().size() == luad::modules::all().size());
  std::set<std::string> names;
  for (const module_def* def : mods.list()) {
    CAPTURE(def->name);
    CHECK(names.insert(std::string(def->name)).second);
    CHECK(mods.find(def->name) == def);
    CHECK(def->classes != 0);
    CHECK_FALSE(def->description.empty());
    const module_exports& ex = mods.exports_of(*def);
    REQUIRE(ex.functions.size() == def->manifest.size());
    for (const function_type& t : def->manifest) {
      CAPTURE(t.name);
      CHECK(t.doc != nullptr);
      CHECK(std::strlen(t.doc) > 10);
      for (const param_type& p : t.params) CHECK(std::strlen(p.type) > 0);
      bool exported = false;
      for (const function_entry& f : ex.functions) exported |= std::strcmp(f.name, t.name) == 0;
      CHECK(exported);
    }
  }
  CHECK(names == std::set<std::string>{"errors", "http", "json", "log", "process", "store",
                                       "supervisor", "time", "workflow"});
  CHECK(mods.find("nope") == nullptr);
}

TEST_CASE("class sets print in a fixed order") {
  CHECK(class_names(workflow_classes) == "deterministic, workflow");
  CHECK(class_names(nondeterministic | io) == "nondeterministic, io");
  CHECK(class_names(all_classes) ==
        "deterministic, nondeterministic, io, network, storage, workflow");
}

TEST_CASE("a yielding module's yield types name commands the engine handles") {
  luad::server::engine& eng = luad::test::shared_engine();
  const module_registry& mods = eng.scheduler().modules();
  std::size_t yields = 0;
  for (const module_def* def : mods.list()) {
    for (const yield_type* y : mods.exports_of(*def).yields) {
      CAPTURE(y->name);
      CHECK(eng.commands().has(y->command));
      ++yields;
    }
  }
  // time.sleep, process.receive (and its durable form), store.op, http.request,
  // workflow.now, .random, .uuid, .side_effect, .version, .continue_as_new,
  // .start, .wait
  CHECK(yields == 13);
  // What a yield object really sends: the command the scheduler counts, by id.
  auto sent = [&](command_id id) {
    return eng.scheduler().stats().commands[static_cast<std::size_t>(id)];
  };
  std::uint64_t sleeps = sent(command_id::clock_sleep);
  auto e = luad::test::run_lua(
      "require('time').sleep(0)\n"
      "assert(require('process').receive('none', 0.001) == nil)\n");
  REQUIRE_MESSAGE(e.reason == exit_reason::normal, e.err.message);
  CHECK(sent(command_id::clock_sleep) >= sleeps + 2);
  // The startup check refuses a yield whose command no dispatcher handles.
  luad::dispatcher::registry none;
  none.freeze();
  CHECK_THROWS_WITH_AS(luad::server::check_yields(mods, none), doctest::Contains("time.sleep"),
                       std::logic_error);
}

TEST_CASE("require of a standard library returns it; one the sandbox leaves out says so") {
  auto e = luad::test::run_lua(R"(
    assert(require("string") == string and require("table") == table)
    assert(require("math") == math and require("utf8") == utf8)
    assert(require("coroutine") == coroutine and require("_G") == _G)
    assert(require("utf8").char(72, 105) == "Hi" and ("x"):rep(2) == "xx")
    local out = {}
    for _, name in ipairs({"io", "os", "debug", "package"}) do
      local ok, err = pcall(require, name)
      out[#out + 1] = tostring(ok) .. " " .. tostring(err)
    end
    utf8 = nil
    local ok, err = pcall(require, "utf8")
    out[#out + 1] = tostring(ok) .. " " .. tostring(err)
    local _, missing = pcall(require, "nope")
    out[#out + 1] = tostring(missing)
    return table.unpack(out))");
  REQUIRE_MESSAGE(e.reason == exit_reason::normal, e.err.message);
  REQUIRE(e.results.size() == 6);
  for (std::size_t i = 0; i < 4; ++i) {
    const std::string* r = e.results[i].get<std::string>();
    REQUIRE(r);
    CAPTURE(*r);
    CHECK(r->starts_with("false "));
    CHECK(luad::test::has(*r, "is not available in luad"));
    CHECK(luad::test::has(*r, "luad's own modules: "));
  }
  CHECK(luad::test::has(*e.results[0].get<std::string>(), "module 'io'"));
  CHECK(luad::test::has(*e.results[4].get<std::string>(), "has removed the global 'utf8'"));
  CHECK(luad::test::has(*e.results[5].get<std::string>(), "module 'nope' not found"));
}
