// `luad check`'s class check: the lexical scan for literal requires and the
// problems it reports for a workflow's script and its file packages.
#include "server/class_check.hpp"

#include <doctest/doctest.h>
#include <sys/wait.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "tests/support.hpp"

namespace {

using luad::server::literal_requires;
using luad::test::has;
using luad::test::temp_dir;

std::string names(std::string_view source) {
  std::string out;
  for (const auto& r : literal_requires(source)) out += r.name + "@" + std::to_string(r.line) + " ";
  return out;
}

}  // namespace

TEST_CASE("the require scan finds literal requires and skips comments, strings and methods") {
  CHECK(names("local t = require('time')\nlocal j = require \"json\"\n") == "time@1 json@2 ");
  CHECK(names("require [[http]]\nrequire ( 'store' )\nrequire[==[a.b]==]") ==
        "http@1 store@2 a.b@3 ");
  CHECK(names("-- require('time')\n--[[ require('http')\n]] x = 1") == "");
  CHECK(names("s = \"require('time')\" .. [[require('http')]]") == "");
  CHECK(names("t.require('time') t:require('http') my_require('store')") == "");
  // Built at run time, or not a plain literal: not seen (a documented limit).
  CHECK(names("require(name) require('ti' .. 'me') require('t\\105me')") == "");
  CHECK(names("#!/usr/bin/env luad\nrequire('log')") == "log@2 ");
}

TEST_CASE("luad check names the file, line and module a workflow's classes refuse") {
  temp_dir tmp("luad_class_check");
  tmp.write("wf/main.lua", "local log = require('log')\nlocal h = require('helpers.util')\n");
  tmp.write("wf/helpers/util.lua", "-- needs the clock\n\nreturn require('time').now\n");
  tmp.write("wf/fine.lua", "return require('json').encode({})\n");
  std::string config = tmp.write("luad.toml",
                                 "[[workflow]]\nname = \"w\"\nscript = \"wf/main.lua\"\n"
                                 "classes = \"workflow\"\n"
                                 "[[workflow]]\nname = \"ok\"\nscript = \"wf/fine.lua\"\n"
                                 "classes = \"workflow\"\n")
                           .string();
  auto problems = luad::server::class_problems(luad::server::load_config(config));
  REQUIRE(problems.size() == 1);
  CHECK(has(problems[0], "helpers/util.lua:3: workflow w: require 'time'"));
  CHECK(has(problems[0], "(nondeterministic)"));
  CHECK(has(problems[0], "(deterministic, workflow)"));

  // The real command: exit 2 and the same line; 0 once the classes allow it.
  auto run = [&](const std::string& file) {
    temp_dir out("luad_class_check_out");
    std::string cmd = std::string("'") + LUAD_BINARY + "' check '" + file + "' >/dev/null 2>'" +
                      (out / "err").string() + "'";
    int status = std::system(cmd.c_str());
    std::ifstream in(out / "err");
    std::ostringstream err;
    err << in.rdbuf();
    return std::make_pair(WIFEXITED(status) ? WEXITSTATUS(status) : -1, err.str());
  };
  auto [code, err] = run(config);
  CHECK(code == 2);
  CHECK(has(err, "util.lua:3: workflow w: require 'time'"));
  std::string fixed =
      tmp.write("luad_fixed.toml",
                "[[workflow]]\nname = \"w\"\nscript = \"wf/main.lua\"\n"
                "classes = [\"workflow\", \"deterministic\", \"nondeterministic\"]\n")
          .string();
  CHECK(run(fixed).first == 0);
}
