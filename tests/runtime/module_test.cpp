// The module registry: every declared module agrees with its manifest.
#include "runtime/module.hpp"

#include <doctest/doctest.h>

#include <cstring>
#include <set>
#include <string>

#include "runtime/yield.hpp"
#include "tests/support.hpp"

using namespace luad::runtime;

TEST_CASE("every module's exports match its type manifest") {
  luad::test::shared_engine();  // runs init_modules()
  std::set<std::string> names;
  for (const module_def* def : module_list()) {
    CAPTURE(def->name);
    CHECK(names.insert(std::string(def->name)).second);
    CHECK(find_module(def->name) == def);
    CHECK(def->classes != 0);
    CHECK_FALSE(def->description.empty());
    const module_exports& ex = exports_of(*def);
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
                                       "supervisor", "time"});
  CHECK(find_module("nope") == nullptr);
}

TEST_CASE("class sets print in a fixed order") {
  CHECK(class_names(workflow_classes) == "deterministic, workflow");
  CHECK(class_names(nondeterministic | io) == "nondeterministic, io");
  CHECK(class_names(all_classes) ==
        "deterministic, nondeterministic, io, network, storage, workflow");
}

TEST_CASE("a yielding module's yield types name commands the engine handles") {
  luad::test::shared_engine();
  const module_def* time = find_module("time");
  REQUIRE(time);
  const module_exports& ex = exports_of(*time);
  REQUIRE(ex.yields.size() == 1);
  CHECK(std::string(ex.yields[0]->name) == "time.sleep");
  CHECK(ex.yields[0]->command == luad::dispatcher::command_id::clock_sleep);
}
