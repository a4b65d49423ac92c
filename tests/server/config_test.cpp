// The daemon's config reader: the shipped default, relative paths, and the
// errors for unknown keys, wrong types and bad values (with file and line).
#include "server/config.hpp"

#include <doctest/doctest.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include "tests/support.hpp"

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
  CHECK(w.limits.cpu == 0);             // the rest comes from [limits]
  CHECK(w.classes == luad::runtime::all_classes);
  CHECK_FALSE(w.durable);  // its schedule keys are documented, commented out
  CHECK(w.schedule.empty());
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

TEST_CASE("cpu limit and time slice: read, checked; the old turn key still loads") {
  config c = parse_config(R"(
[server]
time_slice = 0.005
[limits]
cpu = 2.5
turn = 10000
[[workflow]]
name = "w"
script = "w.lua"
[workflow.limits]
cpu = 1
)",
                          "/x/c.toml");
  CHECK(c.server.time_slice == 0.005);
  CHECK(c.limits.process.cpu == 2.5);
  CHECK(c.workflows.at(0).limits.cpu == 1);
  CHECK(parse_config("", "/x/c.toml").server.time_slice == 0.002);
  CHECK(error_of("[limits]\ncpu = -1\n").find("limits.cpu: must be between") != std::string::npos);
  CHECK(error_of("[server]\ntime_slice = 5\n").find("server.time_slice: must be between") !=
        std::string::npos);
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

TEST_CASE("memory keys: mailbox, exit and timer sizes; remembered exits and log backlog") {
  config c = parse_config("", "/x/c.toml");
  CHECK(c.limits.process.mailbox_bytes == 64u << 20);
  CHECK(c.limits.process.exit_bytes == 1u << 20);
  CHECK(c.limits.process.timers == 10000);
  CHECK(c.limits.process.timer_bytes == 16u << 20);
  CHECK(c.limits.remembered_exit_bytes == 64u << 20);
  CHECK(c.limits.log_backlog_bytes == 16u << 20);
  c = parse_config(R"(
[limits]
mailbox_size = "8MiB"
exit_size = 4096
timers = 10
timer_size = "1MiB"
remembered_exits = 5
remembered_exits_size = "2MiB"
log_backlog = 7
log_backlog_size = "1MiB"
[[workflow]]
name = "w"
script = "w.lua"
[workflow.limits]
exit_size = "2KiB"
)",
                   "/x/c.toml");
  CHECK(c.limits.process.mailbox_bytes == 8u << 20);
  CHECK(c.limits.process.exit_bytes == 4096);
  CHECK(c.limits.process.timers == 10);
  CHECK(c.limits.process.timer_bytes == 1u << 20);
  CHECK(c.limits.remembered_exits == 5);
  CHECK(c.limits.remembered_exit_bytes == 2u << 20);
  CHECK(c.limits.log_backlog == 7);
  CHECK(c.limits.log_backlog_bytes == 1u << 20);
  CHECK(c.workflows[0].limits.exit_bytes == 2048);
  CHECK(c.workflows[0].limits.mailbox_bytes == 8u << 20);  // the rest from [limits]
  CHECK_THROWS_WITH_AS(parse_config("[limits]\nmailbox_size = \"lots\"\n", "/x/c.toml"),
                       doctest::Contains("limits.mailbox_size"), luad::server::config_error);
}

TEST_CASE("[limits] source and pattern_steps bound compiling and pattern matching") {
  config c = parse_config("", "/etc/luad/luad.toml");
  CHECK(c.limits.source_bytes == 1u << 20);
  CHECK(c.limits.pattern_steps == 20'000'000u);
  CHECK(c.limits.journal_steps == 100'000u);
  c = parse_config("[limits]\nsource = \"4MiB\"\npattern_steps = 5000\njournal_steps = 0\n",
                   "/etc/luad/luad.toml");
  CHECK(c.limits.source_bytes == 4u << 20);
  CHECK(c.limits.pattern_steps == 5000u);
  CHECK(c.limits.journal_steps == 0u);
  CHECK_THROWS_WITH(parse_config("[limits]\njournal_steps = -1\n", "/etc/luad/luad.toml"),
                    doctest::Contains("journal_steps"));
  CHECK_THROWS_WITH(parse_config("[limits]\npattern_steps = 10\n", "/etc/luad/luad.toml"),
                    doctest::Contains("pattern_steps"));
}

TEST_CASE("owner keys: profile quotas, a workflow's reachable and controllers") {
  config c = parse_config(
      "[[profile]]\nname = \"p\"\n[profile.quotas]\nprocesses = 5\nmemory = \"1GiB\"\n"
      "timers = 7\n"
      "[[profile]]\nname = \"q\"\n"
      "[[workflow]]\nname = \"a\"\nscript = \"a.lua\"\nreachable = true\n"
      "controllers = [\"uid:1000\", \"workflow:b\"]\n"
      "[[workflow]]\nname = \"b\"\nscript = \"b.lua\"\nreachable = [\"uid:7\"]\n"
      "[[workflow]]\nname = \"c\"\nscript = \"c.lua\"\n",
      "/etc/luad/luad.toml");
  CHECK(c.profiles[0].quotas == luad::runtime::owner_quotas{5, std::size_t{1} << 30, 7});
  CHECK(c.profiles[1].quotas == luad::server::profile_config::default_quotas());
  CHECK(c.workflows[0].reachable == std::vector<std::string>{"*"});
  CHECK(c.workflows[0].controllers == std::vector<std::string>{"uid:1000", "workflow:b"});
  CHECK(c.workflows[1].reachable == std::vector<std::string>{"uid:7"});
  CHECK(c.workflows[2].reachable.empty());
  CHECK(c.workflows[2].controllers.empty());
  std::string w = "[[workflow]]\nname = \"a\"\nscript = \"a.lua\"\n";
  CHECK(error_of(w + "reachable = [\"bob\"]\n").find("workflow[1].reachable: expected owners") !=
        std::string::npos);
  CHECK(error_of(w + "controllers = true\n").find("workflow[1].controllers: expected an array") !=
        std::string::npos);
  CHECK(error_of("[[profile]]\nname = \"p\"\n[profile.quotas]\nthreads = 1\n")
            .find("profile[1].quotas.threads: unknown key") != std::string::npos);
  CHECK(error_of("[[profile]]\nname = \"p\"\npermissions = [\"process:kill\"]\n")
            .find("bad process permission") != std::string::npos);
}

TEST_CASE("connection limits and store quotas: defaults, values and conflicts") {
  config c = parse_config("", "/etc/luad/test.toml");
  CHECK(c.limits.idle_timeout == 300);
  CHECK(c.limits.request_timeout == 30);
  CHECK(luad::server::connection_share(c.limits) == 256);  // a quarter of 1024
  CHECK(luad::server::operator_reserve(c.limits) == 64);
  CHECK(c.storage.namespace_bytes == std::size_t{64} << 20);

  c = parse_config(
      "[limits]\nmax_connections = 8\nconnections_per_uid = 3\nidle_timeout = 0.5\n"
      "request_timeout = 2\n[storage]\nnamespace_bytes = \"1MiB\"\n"
      "[[profile]]\nname = \"p\"\npermissions = [\"store:a\", \"store:b\"]\nstore_bytes = "
      "\"2MiB\"\n"
      "[[workflow]]\nname = \"w\"\nscript = \"w.lua\"\npermissions = [\"store:b\"]\n"
      "store_bytes = \"2MiB\"\n",
      "/etc/luad/test.toml");
  CHECK(luad::server::connection_share(c.limits) == 3);
  CHECK(luad::server::operator_reserve(c.limits) == 1);
  CHECK(c.limits.idle_timeout == 0.5);
  CHECK(c.limits.request_timeout == 2);
  CHECK(c.storage.namespace_bytes == std::size_t{1} << 20);
  CHECK(c.storage.namespace_quotas ==
        std::map<std::string, std::size_t>{{"a", 2 << 20}, {"b", 2 << 20}});
  // A small max_connections: the share is never under 4 unless set, nor over the total.
  c = parse_config("[limits]\nmax_connections = 2\n", "/etc/luad/test.toml");
  CHECK(luad::server::connection_share(c.limits) == 2);

  CHECK(error_of("[limits]\nmax_connections = 4\nconnections_per_uid = 5\n")
            .find("limits.connections_per_uid: must not exceed max_connections") !=
        std::string::npos);
  CHECK(error_of("[limits]\nidle_timeout = 0\n").find("limits.idle_timeout: must be between") !=
        std::string::npos);
  CHECK(error_of("[[profile]]\nname = \"p\"\npermissions = [\"store:a\"]\nstore_bytes = \"1MiB\"\n"
                 "[[profile]]\nname = \"q\"\npermissions = [\"store:a\"]\nstore_bytes = \"2MiB\"\n")
            .find("profile[2].store_bytes: store namespace 'a' already has store_bytes") !=
        std::string::npos);
}

TEST_CASE("workflow schedules: durable, schedule and catchup are read and checked") {
  std::string w = "[[workflow]]\nname = \"a\"\nscript = \"a.lua\"\n";
  config c = parse_config(w, "/etc/luad/test.toml");
  CHECK_FALSE(c.workflows[0].durable);
  CHECK(c.workflows[0].schedule.empty());
  CHECK(c.workflows[0].catchup == "one");
  CHECK(parse_config(w + "durable = true\n", "/etc/luad/test.toml").workflows[0].durable);

  // A schedule implies durable runs; catchup defaults to "one".
  c = parse_config(w + "schedule = \"*/5 9-17 * * mon-fri\"\n", "/etc/luad/test.toml");
  CHECK(c.workflows[0].schedule == "*/5 9-17 * * mon-fri");
  CHECK(c.workflows[0].durable);
  CHECK(c.workflows[0].catchup == "one");
  c = parse_config(w + "schedule = \"@daily\"\ncatchup = \"all\"\ndurable = true\n",
                   "/etc/luad/test.toml");
  CHECK(c.workflows[0].catchup == "all");
  CHECK(c.workflows[0].durable);
  CHECK(parse_config(w + "schedule = \"@hourly\"\ncatchup = \"none\"\n", "/etc/luad/test.toml")
            .workflows[0]
            .catchup == "none");

  // A bad expression: the parser's message, placed at the key.
  CHECK(error_of(w + "schedule = \"*/0 * * * *\"\n") ==
        "/etc/luad/test.toml:4:12: workflow[1].schedule: schedule \"*/0 * * * *\": minute: step 0");
  CHECK(error_of(w + "schedule = \"0 0 * 13 *\"\n").find("month: 13 is out of range 1-12") !=
        std::string::npos);
  CHECK(error_of(w + "schedule = \"\"\n").find("workflow[1].schedule: schedule \"\": expected 5") !=
        std::string::npos);
  CHECK(error_of(w + "schedule = \"0 0 30 2 *\"\n")
            .find("workflow[1].schedule: schedule \"0 0 30 2 *\" never fires") !=
        std::string::npos);
  CHECK(error_of(w + "schedule = 5\n").find("workflow[1].schedule: expected a string") !=
        std::string::npos);
  // durable = false contradicts a schedule: the error is on the durable line.
  std::string m = error_of(w + "schedule = \"@daily\"\ndurable = false\n");
  CHECK(m.find("/etc/luad/test.toml:5:") == 0);
  CHECK(m.find("workflow[1].durable: a workflow with a schedule runs durably") !=
        std::string::npos);
  m = error_of(w + "catchup = \"all\"\n");
  CHECK(m.find("/etc/luad/test.toml:4:") == 0);
  CHECK(m.find("workflow[1].catchup: needs a schedule") != std::string::npos);
  CHECK(error_of(w + "schedule = \"@daily\"\ncatchup = \"some\"\n")
            .find("workflow[1].catchup: 'some' is not one of one, all, none") != std::string::npos);
  CHECK(error_of(w + "durable = \"yes\"\n").find("workflow[1].durable: expected true or false") !=
        std::string::npos);
}

TEST_CASE(
    "[metrics] listen: off by default; HOST:PORT with an IP address; bad ones name the line") {
  config c = parse_config("", "/etc/luad/test.toml");
  CHECK(c.metrics.listen.empty());
  CHECK(luad::server::load_config(std::string(LUAD_SOURCE_DIR) + "/configs/luad.toml")
            .metrics.listen.empty());
  c = parse_config("[metrics]\nlisten = \"127.0.0.1:9464\"\n", "/etc/luad/test.toml");
  CHECK(c.metrics.address == "127.0.0.1");
  CHECK(c.metrics.port == 9464);
  c = parse_config("[metrics]\nlisten = \"[::1]:0\"\n", "/etc/luad/test.toml");
  CHECK(c.metrics.address == "::1");
  CHECK(c.metrics.port == 0);
  CHECK(parse_config("[metrics]\nlisten = \"\"\n", "/etc/luad/test.toml").metrics.listen.empty());
  for (const char* bad : {"localhost:9464", "127.0.0.1", "127.0.0.1:", ":9464", "::1:9464",
                          "[127.0.0.1]:9464", "127.0.0.1:94a4", "256.0.0.1:80", "1.2.3.4:-1"}) {
    INFO(bad);
    CHECK(error_of("[metrics]\nlisten = \"" + std::string(bad) + "\"\n") ==
          "/etc/luad/test.toml:2:10: metrics.listen: expected \"HOST:PORT\" with HOST an IP "
          "address (\"127.0.0.1:9464\", \"[::1]:9464\"), not '" +
              std::string(bad) + "'");
  }
  CHECK(error_of("[metrics]\nlisten = \"127.0.0.1:65536\"\n") ==
        "/etc/luad/test.toml:2:10: metrics.listen: port 65536 is out of range 0..65535");
  CHECK(error_of("[metrics]\nlisten = 9464\n") ==
        "/etc/luad/test.toml:2:10: metrics.listen: expected a string");
  CHECK(error_of("[metrics]\nport = 9464\n") ==
        "/etc/luad/test.toml:2:8: metrics.port: unknown key (known: listen)");
}

TEST_CASE("[storage] on PostgreSQL: url, password sources, pool and timeout are checked") {
  config c = parse_config(
      "[storage]\nbackend = \"postgres\"\nurl = \"postgresql://luad@db.internal:5433/luad\"\n"
      "password_file = \"secrets/pg\"\npool_size = 6\nstatement_timeout = 2.5\n",
      "/etc/luad/test.toml");
  CHECK(c.storage.backend == "postgres");
  CHECK(c.storage.url == "postgresql://luad@db.internal:5433/luad");
  CHECK(c.storage.password_file == "/etc/luad/secrets/pg");
  CHECK(c.storage.pool_size == 6);
  CHECK(c.storage.statement_timeout == doctest::Approx(2.5));
  CHECK(c.storage.has_database());
  CHECK(parse_config("", "/etc/luad/test.toml").storage.backend == "sqlite");

  CHECK(
      error_of("[storage]\nbackend = \"mysql\"\n").find("'mysql' is not one of sqlite, postgres") !=
      std::string::npos);
  CHECK(error_of("[storage]\nbackend = \"postgres\"\n")
            .find("storage.url: backend = \"postgres\" needs the server's url") !=
        std::string::npos);
  CHECK(error_of("[storage]\nurl = \"postgresql://x/y\"\n")
            .find("storage.url: is only read with backend = \"postgres\"") != std::string::npos);
  std::string m =
      error_of("[storage]\nbackend = \"postgres\"\nurl = \"postgresql://luad:hunter2@db/luad\"\n");
  CHECK(m.find("storage.url: holds a password") != std::string::npos);
  CHECK(m.find("hunter2") == std::string::npos);
  CHECK(error_of("[storage]\nbackend = \"postgres\"\nurl = \"host=db password=hunter2\"\n")
            .find("holds a password") != std::string::npos);
  CHECK(error_of("[storage]\nbackend = \"postgres\"\nurl = \"postgresql://[oops\"\n")
            .find("storage.url: ") != std::string::npos);
  CHECK(error_of("[storage]\nbackend = \"postgres\"\nurl = \"host=db\"\npassword_env = \"A\"\n"
                 "password_file = \"b\"\n")
            .find("storage.password_file: give password_env or password_file, not both") !=
        std::string::npos);
  CHECK(error_of("[storage]\nbackend = \"postgres\"\nurl = \"host=db\"\npool_size = 1\n")
            .find("storage.pool_size: 1 is out of range 2..64") != std::string::npos);
}

TEST_CASE("[storage] password_env and password_file are read at start, with clear errors") {
  luad::server::storage_config s;
  s.backend = "postgres";
  s.url = "host=db dbname=luad";
  s.password_env = "LUAD_TEST_PG_PASSWORD_UNSET";
  ::unsetenv("LUAD_TEST_PG_PASSWORD_UNSET");
  std::string why;
  try {
    luad::server::postgres_options_of(s);
  } catch (const std::runtime_error& e) {
    why = e.what();
  }
  CHECK(why ==
        "[storage] password_env: the environment variable LUAD_TEST_PG_PASSWORD_UNSET is not set");
  ::setenv("LUAD_TEST_PG_PASSWORD_UNSET", "s3cret", 1);
  CHECK(luad::server::postgres_options_of(s).password == "s3cret");
  ::unsetenv("LUAD_TEST_PG_PASSWORD_UNSET");

  luad::test::temp_dir d("luad_config");
  s.password_env.clear();
  s.password_file = (d.path() / "pg").string();
  why.clear();
  try {
    luad::server::postgres_options_of(s);
  } catch (const std::runtime_error& e) {
    why = e.what();
  }
  CHECK(why == "[storage] password_file: cannot read " + s.password_file);
  std::ofstream(s.password_file) << "from file\n";
  auto o = luad::server::postgres_options_of(s);
  CHECK(o.password == "from file");
  CHECK(o.conninfo == "host=db dbname=luad");
  CHECK(o.pool_size == 4);
  CHECK(o.statement_timeout == std::chrono::milliseconds(10000));
}
