// `luad types`: the generated LuaLS definitions cover every manifest, every class
// they name is defined, the sandbox model agrees with the real sandbox, the files
// land on disk (or fail with the path named), and luacheck accepts our scripts.
#include "server/types.hpp"
#include "modules/modules.hpp"
#include "server/engine.hpp"

#include <doctest/doctest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "runtime/lua.hpp"
#include "tests/support.hpp"

namespace fs = std::filesystem;
using luad::runtime::function_type;
using luad::runtime::module_def;
using luad::runtime::param_type;
using luad::test::has;
using luad::test::slurp;
using luad::test::temp_dir;

namespace {

struct command_result {
  int code;
  std::string output;  // stdout and stderr together
};

// Runs a shell command from the source tree, capturing its output.
command_result run_command(const std::string& command) {
  std::string cmd = std::string("cd '") + LUAD_SOURCE_DIR + "' && " + command + " 2>&1";
  command_result r{-1, ""};
  FILE* pipe = ::popen(cmd.c_str(), "r");
  REQUIRE_MESSAGE(pipe != nullptr, cmd);
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, pipe)) > 0) r.output.append(buf, n);
  int status = ::pclose(pipe);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

// Every `luad.NAME` a manifest type refers to.
std::set<std::string> referenced_classes() {
  static const std::regex name(R"(luad\.[A-Za-z_][A-Za-z0-9_]*)");
  std::set<std::string> out;
  auto scan = [&](const param_type& p) {
    std::string type = p.type;
    for (std::sregex_iterator it(type.begin(), type.end(), name), end; it != end; ++it) {
      out.insert(it->str());
    }
  };
  for (const module_def* def : luad::modules::all()) {
    for (const function_type& f : def->manifest) {
      std::for_each(f.params.begin(), f.params.end(), scan);
      std::for_each(f.returns.begin(), f.returns.end(), scan);
    }
  }
  return out;
}

// Fails the test with Lua's message unless `text` compiles.
void check_parses(const std::string& text, const std::string& name) {
  lua_State* L = luaL_newstate();
  int status = luaL_loadbufferx(L, text.data(), text.size(), name.c_str(), "t");
  CHECK_MESSAGE(status == LUA_OK, name << ": " << lua_tostring(L, -1));
  lua_close(L);
}

// The .lua files directly in `folder` (relative to the source tree), sorted, minus `skip`.
std::vector<std::string> lua_files(const std::string& folder, const std::set<std::string>& skip) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(fs::path(LUAD_SOURCE_DIR) / folder)) {
    if (!e.is_regular_file() || e.path().extension() != ".lua") continue;
    std::string rel = fs::relative(e.path(), LUAD_SOURCE_DIR).string();
    if (!skip.count(rel)) out.push_back(rel);
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string joined(const std::vector<std::string>& files) {
  std::string out;
  for (const std::string& f : files) out.append(" '").append(f).append("'");
  return out;
}

}  // namespace

TEST_CASE("luad types: every manifest function appears with its doc, @param and @return lines") {
  for (const module_def* def : luad::modules::all()) {
    std::string name(def->name);
    CAPTURE(name);
    std::string text = luad::server::module_definitions(*def);
    CHECK(text.rfind(std::string("---@meta ") += name + "\n", 0) == 0);
    CHECK(has(text, std::string("---@class luad.") += name + "\n"));
    CHECK(has(text, std::string("\nlocal ") += name + " = {}\n"));
    CHECK(text.ends_with(std::string("\nreturn ") += name + "\n"));
    check_parses(text, name + ".lua");
    for (const function_type& f : def->manifest) {
      CAPTURE(f.name);
      std::string args;
      for (const param_type& p : f.params) {
        if (!args.empty()) args += ", ";
        args += p.name;
      }
      std::string signature = std::string("function ").append(name).append(".").append(f.name);
      signature.append("(").append(args).append(")");
      auto at = text.find(signature);
      REQUIRE(at != std::string::npos);
      auto doc = text.rfind(std::string("---") += std::string(f.doc) + "\n", at);
      REQUIRE(doc < at);
      std::string block = text.substr(doc, at - doc);  // what annotates this function
      for (const param_type& p : f.params) {
        CHECK(has(block, std::string("---@param ") += std::string(p.name) + " " + p.type + "\n"));
      }
      for (const param_type& r : f.returns) {
        CHECK(has(block, std::string("---@return ") += std::string(r.type) + " " + r.name + "\n"));
      }
      CHECK(std::count(block.begin(), block.end(), '\n') ==
            static_cast<std::ptrdiff_t>(1 + f.params.size() + f.returns.size()));
    }
  }
}

TEST_CASE("luad types: every class a manifest refers to is defined in luad.lua") {
  std::string shared = luad::server::shared_definitions();
  CHECK(shared.rfind("---@meta", 0) == 0);
  check_parses(shared, "luad.lua");
  std::set<std::string> classes = referenced_classes();
  CHECK(classes.count("luad.error") == 1);
  CHECK(classes.count("luad.pid") == 1);
  for (const std::string& c : classes) {
    CAPTURE(c);
    CHECK((has(shared, std::string("---@class ") += c + "\n") ||
           has(shared, std::string("---@alias ") += c + "\n")));
  }
  // What luad.error's fields refer to, and the sandbox's `require`.
  CHECK(has(shared, "---@alias luad.error_kind\n"));
  CHECK(has(shared, "---| \"permission_denied\"\n"));
  CHECK(has(shared, "function require(modname) end"));
}

TEST_CASE("luad types: json.null, a constant outside the manifest, is declared") {
  const module_def* json = luad::modules::find("json");
  REQUIRE(json);
  std::string text = luad::server::module_definitions(*json);
  CHECK(has(text, "---@type lightuserdata\njson.null = nil\n"));
}

TEST_CASE("luad types: each module's definitions list exactly the fields scripts see") {
  // Each module's fields, as "module.field=type" lines, from inside a process
  // that has every module, luad test's too.
  std::string script = "local out = {}\n";
  for (const module_def* def : luad::modules::with_test()) {
    script.append("for k, v in pairs(require(\"").append(def->name).append("\")) do\n");
    script.append("  out[#out + 1] = \"")
        .append(def->name)
        .append(".\" .. k .. \"=\" .. type(v)\n");
    script += "end\n";
  }
  script += "table.sort(out)\nreturn table.concat(out, \"\\n\")\n";
  luad::server::engine_options eo;
  eo.scheduler = luad::runtime::scheduler_options::with_workers(1);
  eo.scheduler.modules = luad::modules::with_test();
  luad::server::engine eng(std::move(eo));
  auto fut = luad::test::spawn_lua(eng, script);
  auto e = luad::test::wait_exit(fut);
  REQUIRE_MESSAGE(e.reason == luad::runtime::exit_reason::normal, e.err.message);
  const auto* fields = e.results.at(0).get<std::string>();
  REQUIRE(fields);
  std::map<std::string, std::string> texts;
  for (const module_def* def : luad::modules::with_test()) {
    texts[std::string(def->name)] = luad::server::module_definitions(*def);
  }
  std::istringstream lines(*fields);
  std::string entry;
  int seen = 0;
  while (std::getline(lines, entry)) {
    CAPTURE(entry);
    auto dot = entry.find('.'), eq = entry.find('=');
    std::string mod = entry.substr(0, dot), field = entry.substr(0, eq);
    const std::string& text = texts[mod];
    if (entry.substr(eq + 1) == "function") {
      CHECK(has(text, std::string("\nfunction ") += field + "("));
    } else {
      CHECK(has(text, std::string("\n") += field + " = "));
    }
    ++seen;
  }
  std::size_t declared = 0;
  for (const module_def* def : luad::modules::with_test())
    declared += def->manifest.size() + def->script_manifest.size();
  CHECK(seen == static_cast<int>(declared) + 1);  // the functions and json.null
}

TEST_CASE("luad types: the sandbox model matches the globals a process really has") {
  // Every global of the Lua 5.4 manual: the sandbox has it iff the model lists it.
  static const char* const lua54[] = {
      "_G",       "_VERSION",     "assert",     "collectgarbage", "coroutine",
      "debug",    "dofile",       "error",      "getmetatable",   "io",
      "ipairs",   "load",         "loadfile",   "math",           "next",
      "os",       "package",      "pairs",      "pcall",          "print",
      "rawequal", "rawget",       "rawlen",     "rawset",         "require",
      "select",   "setmetatable", "string",     "table",          "tonumber",
      "tostring", "type",         "utf8",       "warn",           "xpcall",
      "arg",      "unpack",       "loadstring", "setfenv",        "getfenv",
      "module",   "bit32"};
  std::string script =
      "local function check(name, want)\n"
      "  assert((_ENV[name] ~= nil) == want, name .. ' present: ' .. "
      "tostring(_ENV[name] ~= nil))\nend\n"
      // Lua built with LUA_COMPAT_MATHLIB (Debian's is) keeps these deprecated
      // functions; the model leaves them out on purpose.
      "local compat = {}\n"
      "for f in ('atan2 cosh frexp ldexp log10 pow sinh tanh'):gmatch('%w+') do\n"
      "  compat['math.' .. f] = true\n"
      "end\n"
      "local function fields(lib, want)\n"
      "  local got = {}\n"
      "  for k in pairs(_ENV[lib]) do\n"
      "    if not compat[lib .. '.' .. k] then got[#got + 1] = k end\n"
      "  end\n"
      "  table.sort(got)\n"
      "  got = table.concat(got, ' ')\n"
      "  assert(got == want, lib .. ' has ' .. got .. ', not ' .. want)\n"
      "end\n";
  std::set<std::string> listed;
  for (const auto& g : luad::server::sandbox_globals()) listed.insert(g.name);
  CHECK(listed.size() == luad::server::sandbox_globals().size());
  for (const char* name : lua54) {
    script.append("check('").append(name).append(listed.count(name) ? "', true)\n" : "', false)\n");
  }
  for (const auto& g : luad::server::sandbox_globals()) {
    if (g.fields.empty()) continue;
    std::vector<std::string> want(g.fields.begin(), g.fields.end());
    std::sort(want.begin(), want.end());
    std::string list;
    for (const std::string& f : want) list.append(list.empty() ? "" : " ").append(f);
    script.append("fields('").append(g.name).append("', '").append(list).append("')\n");
  }
  auto e = luad::test::run_lua(script);
  CHECK_MESSAGE(e.reason == luad::runtime::exit_reason::normal, e.err.message);
}

TEST_CASE("luad types: the .luarc.json and .luacheckrc texts") {
  std::string rc = luad::server::luarc_json("/x/luad \"types\"");
  CHECK(has(rc, "\"runtime.version\": \"Lua 5.4\""));
  CHECK(has(rc, "\"workspace.library\": [\"/x/luad \\\"types\\\"\"]"));
  for (const char* lib : {"io", "os", "debug", "package"}) {
    CHECK(has(rc, std::string("\"") += std::string(lib) + "\": \"disable\""));
  }
  std::string check = luad::server::luacheckrc();
  check_parses(check, ".luacheckrc");
  CHECK(has(check, "std = \"luad\""));
  CHECK_FALSE(has(check, "dump = "));
  CHECK_FALSE(has(check, " io = "));
}

TEST_CASE("luad types: write_types creates the folder and writes every file") {
  temp_dir tmp("luad_types_write");
  fs::path out = tmp.path() / "nested" / "types";
  std::ostringstream err;
  REQUIRE(luad::server::write_types(out.string(), err) == 0);
  CHECK(err.str().empty());
  CHECK(slurp(out / "luad.lua") == luad::server::shared_definitions());
  CHECK(slurp(out / ".luacheckrc") == luad::server::luacheckrc());
  CHECK(slurp(out / ".luarc.json") == luad::server::luarc_json(out.string()));
  for (const module_def* def : luad::modules::all()) {
    CAPTURE(def->name);
    CHECK(slurp(out / (std::string(def->name) + ".lua")) == luad::server::module_definitions(*def));
  }
  // Again into the same folder: files are replaced, not appended to.
  REQUIRE(luad::server::write_types(out.string(), err) == 0);
  CHECK(slurp(out / "luad.lua") == luad::server::shared_definitions());
}

TEST_CASE("luad types: a folder that cannot be made or written is an error naming the path") {
  temp_dir tmp("luad_types_bad");
  std::ofstream(tmp.path() / "file") << "x";
  fs::path under_file = tmp.path() / "file" / "types";  // fails even as root
  std::ostringstream err;
  CHECK(luad::server::write_types(under_file.string(), err) == 1);
  CHECK(has(err.str(), under_file.string()));

  fs::path blocked = tmp.path() / "blocked";  // luad.lua is a folder: the file cannot be written
  fs::create_directories(blocked / "luad.lua");
  std::ostringstream err2;
  CHECK(luad::server::write_types(blocked.string(), err2) == 1);
  CHECK(has(err2.str(), (blocked / "luad.lua").string()));

  fs::path not_utf8 = tmp.path() / "\xff";  // .luarc.json (JSON) cannot name it
  std::ostringstream err3;
  CHECK(luad::server::write_types(not_utf8.string(), err3) == 1);
  CHECK(has(err3.str(), "UTF-8"));
  CHECK_FALSE(fs::exists(not_utf8 / ".luarc.json"));
}

TEST_CASE("luad types --out DIR: the command writes the files, or exits 1 naming the path") {
  temp_dir tmp("luad_types_cli");
  fs::path out = tmp.path() / "types";
  auto r = run_command(std::string("'") + LUAD_BINARY + "' types --out '" + out.string() + "'");
  CHECK_MESSAGE(r.code == 0, r.output);
  CHECK(fs::exists(out / "time.lua"));
  CHECK(fs::exists(out / "test.lua"));  // for luad test's scripts
  CHECK(fs::exists(out / ".luarc.json"));
  std::ofstream(tmp.path() / "file") << "x";
  fs::path bad = tmp.path() / "file" / "types";
  r = run_command(std::string("'") + LUAD_BINARY + "' types --out '" + bad.string() + "'");
  CHECK(r.code == 1);
  CHECK(has(r.output, bad.string()));
}

TEST_CASE("luad types: luacheck with the generated .luacheckrc accepts luad scripts") {
  auto version = run_command("luacheck --version");
  REQUIRE_MESSAGE(version.code == 0,
                  "luacheck is missing (apt-get install lua-check): " << version.output);
  temp_dir tmp("luad_types_luacheck");
  std::ostringstream err;
  REQUIRE(luad::server::write_types(tmp.path().string(), err) == 0);
  // Options go after the files: --only takes every word that follows it.
  std::string options = std::string(" --no-color --codes --config '") +=
      (tmp.path() / ".luacheckrc").string() + "'";

  // The shipped scripts pass every default check.
  std::vector<std::string> shipped = lua_files("examples", {});
  std::vector<std::string> workflows = lua_files("configs/workflows", {});
  shipped.insert(shipped.end(), workflows.begin(), workflows.end());
  REQUIRE(shipped.size() >= 5);
  auto r = run_command("luacheck" + joined(shipped) + options);
  CHECK_MESSAGE(r.code == 0, r.output);

  // The Lua test scripts use only the sandbox's globals (warnings 1xx), except
  // sandbox.lua, which probes removed ones on purpose. (Their subfolders hold
  // scripts that set globals or do not compile, on purpose too.)
  std::vector<std::string> tests = lua_files("tests/lua", {"tests/lua/sandbox.lua"});
  REQUIRE(tests.size() >= 10);
  r = run_command("luacheck" + joined(tests) + options + " --only 1");
  CHECK_MESSAGE(r.code == 0, r.output);

  // And it refuses what the sandbox removed.
  std::ofstream(tmp.path() / "bad.lua") << "local f = io.open\nlocal d = string.dump\n"
                                           "dofile('x')\nreturn f, d, os.time()\n";
  r = run_command(std::string("luacheck '") += (tmp.path() / "bad.lua").string() + "'" + options);
  CHECK(r.code == 1);
  for (const char* name : {"io", "dump", "dofile", "os"}) {
    CHECK(has(r.output, std::string("'") += std::string(name) + "'"));
  }
}
