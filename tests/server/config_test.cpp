// The daemon's config reader: the shipped default, relative paths, and the
// errors for unknown keys, wrong types and bad values (with file and line).
#include "server/config.hpp"

#include <doctest/doctest.h>

#include <string>

using luad::server::config;
using luad::server::config_error;
using luad::server::parse_config;

namespace {

// The message of the error `text` raises, or "" if it loads.
std::string error_of(const std::string& text) {
  try {
    parse_config(text, "/etc/luad/test.toml");
  } catch (const config_error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("the shipped configs/luad.toml loads, with every documented section") {
  config c = luad::server::load_config(std::string(LUAD_SOURCE_DIR) + "/configs/luad.toml");
  std::string dir = std::string(LUAD_SOURCE_DIR) + "/configs/";
  CHECK(c.server.socket == dir + "run/luad.sock");
  CHECK(c.server.socket_mode == 0660);
  CHECK(c.storage.data_dir == dir + "data");
  CHECK(c.limits.process.memory == 64u << 20);
  CHECK(c.limits.process.message_bytes == 16u << 20);
  CHECK(c.limits.max_connections == 1024);
  REQUIRE(c.script_roots.size() == 1);
  CHECK(c.script_roots[0] == dir + "workflows");
  REQUIRE(c.profiles.size() == 2);
  CHECK(c.profiles[1].permissions == luad::runtime::permission_list{"store:scratch"});
  REQUIRE(c.workflows.size() == 1);
  const auto& w = c.workflows[0];
  CHECK(w.name == "ticker");
  CHECK(w.script == dir + "workflows/ticker.lua");
  CHECK(w.args == std::vector<std::string>{"1"});
  CHECK(w.restart == "permanent");
  CHECK(w.reload == "restart");
  CHECK(w.reload_trial == 5);
  CHECK(w.limits.memory == 16u << 20);  // its own table overrides [limits]
  CHECK(w.limits.turn == 10000);        // the rest comes from [limits]
  CHECK(w.classes == luad::runtime::all_classes);
}

TEST_CASE("an empty config gives the defaults; paths resolve against the file's folder") {
  config c = parse_config("", "/etc/luad/luad.toml");
  CHECK(c.storage.data_dir == "/etc/luad/data");
  CHECK(c.server.log_format == "text");
  CHECK(c.workflows.empty());
  c = parse_config("[storage]\ndata_dir = \"/var/lib/luad\"\n", "/etc/luad/luad.toml");
  CHECK(c.storage.data_dir == "/var/lib/luad");
}

TEST_CASE("config values in their other accepted forms") {
  config c = parse_config(R"(
[server]
socket_mode = 0o600
[limits]
memory = 1048576
[[workflow]]
name = "w"
script = "w.lua"
classes = ["deterministic", "workflow"]
[[workflow]]
name = "v"
script = "v.lua"
classes = "workflow"
)",
                          "/x/c.toml");
  CHECK(c.server.socket_mode == 0600);
  CHECK(c.limits.process.memory == 1048576);
  CHECK(c.workflows[0].classes == (luad::runtime::deterministic | luad::runtime::workflow));
  CHECK(c.workflows[1].classes == luad::runtime::workflow_classes);
}

TEST_CASE("unknown keys, wrong types and bad values name the file, line and key") {
  std::string m = error_of("[server]\nworkers = 2\nwrokers = 3\n");
  CHECK(m.find("/etc/luad/test.toml:3:") == 0);
  CHECK(m.find("server.wrokers: unknown key") != std::string::npos);
  CHECK(m.find("known: ") != std::string::npos);

  m = error_of("[server]\nworkers = \"two\"\n");
  CHECK(m.find(":2:") != std::string::npos);
  CHECK(m.find("server.workers: expected an integer") != std::string::npos);

  CHECK(error_of("[server]\nlog_level = \"loud\"\n").find("'loud' is not one of debug, info") !=
        std::string::npos);
  CHECK(error_of("[server]\nsocket_mode = \"rw-rw----\"\n").find("octal mode") !=
        std::string::npos);
  CHECK(error_of("[limits]\nmemory = \"lots\"\n").find("limits.memory: cannot read size 'lots'") !=
        std::string::npos);
  CHECK(error_of("[limits]\nturn = 5\n").find("limits.turn: 5 is out of range") !=
        std::string::npos);
  CHECK(error_of("[bogus]\n").find(": bogus: unknown key") != std::string::npos);
  CHECK(error_of("server = 3\n").find("server: expected a table") != std::string::npos);
  CHECK(error_of("[server\n").find("/etc/luad/test.toml:1:") == 0);  // a syntax error, placed
}

TEST_CASE("workflows and profiles are checked entry by entry") {
  CHECK(error_of("[[workflow]]\nscript = \"a.lua\"\n")
            .find("workflow[1].name: every workflow "
                  "needs a name") != std::string::npos);
  CHECK(error_of("[[workflow]]\nname = \"a\"\n").find("workflow[1].script") != std::string::npos);
  std::string two = "[[workflow]]\nname = \"a\"\nscript = \"a.lua\"\n";
  CHECK(error_of(two + two).find("workflow[2].name: workflow 'a' is defined twice") !=
        std::string::npos);
  CHECK(error_of(two + "restart = \"always\"\n").find("'always' is not one of permanent") !=
        std::string::npos);
  CHECK(error_of(two + "reload_trial = -1\n").find("workflow[1].reload_trial: must be between") !=
        std::string::npos);
  CHECK(error_of(two + "permissions = [\"fs:/\"]\n").find("unknown permission 'fs:/'") !=
        std::string::npos);
  CHECK(error_of(two + "classes = [\"magic\"]\n").find("unknown class 'magic'") !=
        std::string::npos);
  CHECK(error_of(two + "[workflow.limits]\nmemroy = 1\n")
            .find("workflow[1].limits.memroy: unknown key") != std::string::npos);
  CHECK(error_of("[[profile]]\nname = \"p\"\nuids = [-1]\n").find("profile[1].uids") !=
        std::string::npos);
  CHECK(error_of("[[profile]]\npermissions = []\n").find("every profile needs a name") !=
        std::string::npos);
}

TEST_CASE("a missing config file is a clear error") {
  try {
    luad::server::load_config("/nonexistent/luad.toml");
    FAIL("loaded a file that does not exist");
  } catch (const config_error& e) {
    CHECK(std::string(e.what()) == "/nonexistent/luad.toml: cannot read the file");
  }
}
