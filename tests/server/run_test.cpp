// `luad run` end to end: the real binary, its stdout, stderr and exit codes.
#include <doctest/doctest.h>

#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "runtime/json.hpp"
#include "server/run.hpp"
#include "tests/support.hpp"

namespace {

using luad::runtime::value;
using luad::test::has;
using luad::test::slurp;
using luad::test::temp_dir;

struct result {
  int code;
  std::string out, err;
};

// Runs `luad <args>` from the source directory, capturing both streams.
result run_luad(const std::string& args) {
  temp_dir dir("luad_run_test");
  std::string cmd = std::string("cd '") + LUAD_SOURCE_DIR + "' && '" + LUAD_BINARY + "' " + args +
                    " >'" + (dir / "out").string() + "' 2>'" + (dir / "err").string() + "'";
  int status = std::system(cmd.c_str());
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, slurp(dir / "out"), slurp(dir / "err")};
}

// The exit `luad run` printed as the last line of stderr, decoded.
value exit_of(const result& r) {
  std::string text = r.err;
  while (!text.empty() && text.back() == '\n') text.pop_back();
  auto line = luad::runtime::json_decode(text.substr(text.rfind('\n') + 1));
  REQUIRE_MESSAGE(line.ok(), r.err);
  return *line;
}

// Checks that `exit` has the failed-exit shape of runtime::exit_value (what
// `luad submit --wait` prints too) with `reason` and `kind`.
void check_failed_exit(const value& exit, const char* reason, const char* kind) {
  REQUIRE(exit.get<value::map>() != nullptr);
  REQUIRE(exit.find("reason") != nullptr);
  CHECK(*exit.find("reason") == value(reason));
  REQUIRE(exit.find("kind") != nullptr);
  CHECK(*exit.find("kind") == value(kind));
  REQUIRE(exit.find("pid") != nullptr);
  CHECK(exit.find("pid")->get<std::string>() != nullptr);
  REQUIRE(exit.find("message") != nullptr);
  REQUIRE(exit.find("message")->get<std::string>() != nullptr);
  REQUIRE(exit.find("retryable") != nullptr);
  CHECK(*exit.find("retryable") == value(false));
  CHECK(exit.find("results") == nullptr);
}

}  // namespace

TEST_CASE("luad run prints return values as JSON lines and exits 0") {
  temp_dir tmp("luad_run");
  auto path = tmp.write("ok.lua", "local a = ... return a, 42, {b = true, a = {1, 2.5}}").string();
  auto r = run_luad("run " + path + " hi");
  CHECK(r.code == 0);
  CHECK(r.out == "\"hi\"\n42\n{\"a\":[1,2.5],\"b\":true}\n");
}

TEST_CASE("luad run on the shipped example succeeds") {
  auto r = run_luad("run examples/hello.lua tester");
  CHECK(r.code == 0);
  CHECK(has(r.out, "\"greeting\":\"hello, tester\""));
  CHECK(has(r.err, "hello tester"));  // the log line, tagged with a pid
}

TEST_CASE("luad run reports a runtime error as structured JSON on stderr, exit 1") {
  temp_dir tmp("luad_run");
  auto path = tmp.write("err.lua", "local function f() error('bad thing') end f()").string();
  auto r = run_luad("run " + path);
  CHECK(r.code == luad::server::run_error);
  CHECK(r.out.empty());
  value exit = exit_of(r);
  check_failed_exit(exit, "error", "runtime");
  CHECK(has(*exit.find("message")->get<std::string>(), "bad thing"));
  REQUIRE(exit.find("traceback") != nullptr);
  CHECK(has(*exit.find("traceback")->get<std::string>(), "err.lua"));
}

TEST_CASE("luad run prints NaN as null and bytes that are not UTF-8 as $bytes, as the protocol") {
  temp_dir tmp("luad_run");
  auto path = tmp.write("nan.lua", "return 1, 0/0, '\\xff\\xfe', {k = 1/0}").string();
  auto r = run_luad("run " + path);
  CHECK(r.code == luad::server::run_ok);
  CHECK(r.out == "1\nnull\n{\"$bytes\":\"//4=\"}\n{\"k\":null}\n");
  path = tmp.write("raise.lua", "error('bad \\xff')").string();
  r = run_luad("run " + path);
  CHECK(r.code == luad::server::run_error);
  value exit = exit_of(r);  // still JSON: the message's bad byte is U+FFFD
  CHECK(has(*exit.find("message")->get<std::string>(), "bad \xEF\xBF\xBD"));
}

TEST_CASE("luad run enforces --memory and --instructions with exit code 3") {
  temp_dir tmp("luad_run");
  auto bomb = tmp.write("bomb.lua", "local t = {} for i = 1, 1e9 do t[i] = i end").string();
  auto r = run_luad("run --memory 2MiB " + bomb);
  CHECK(r.code == luad::server::run_limit);
  check_failed_exit(exit_of(r), "limit", "limit");
  auto loop = tmp.write("loop.lua", "while true do end").string();
  r = run_luad("run --instructions 1000000 " + loop);
  CHECK(r.code == luad::server::run_limit);
  value exit = exit_of(r);
  check_failed_exit(exit, "limit", "limit");
  CHECK(has(*exit.find("message")->get<std::string>(), "instruction limit"));
}

TEST_CASE("luad run: missing file, syntax error and bad options fail clearly") {
  auto r = run_luad("run does/not/exist.lua");
  CHECK(r.code == luad::server::run_error);
  check_failed_exit(exit_of(r), "error", "not_found");
  temp_dir tmp("luad_run");
  auto bad = tmp.write("syntax.lua", "return = 1").string();
  r = run_luad("run " + bad);
  CHECK(r.code == luad::server::run_error);
  check_failed_exit(exit_of(r), "error", "syntax");
  r = run_luad("run --memory lots " + bad);
  CHECK(r.code == luad::server::run_usage);
  CHECK(has(r.err, "--memory"));
  r = run_luad("frobnicate");
  CHECK(r.code == luad::server::run_usage);
}

TEST_CASE("sizes parse with binary units") {
  std::size_t n = 0;
  CHECK(luad::server::parse_size("64MiB", n));
  CHECK(n == 64u << 20);
  CHECK(luad::server::parse_size("512k", n));
  CHECK(n == 512u << 10);
  CHECK(luad::server::parse_size("0", n));
  CHECK(n == 0);
  CHECK_FALSE(luad::server::parse_size("", n));
  CHECK_FALSE(luad::server::parse_size("12 parsecs", n));
  CHECK_FALSE(luad::server::parse_size("99999999999999999999G", n));
  // 2^64 + 3: the last digit would wrap the count around to 3.
  CHECK_FALSE(luad::server::parse_size("18446744073709551619", n));
  CHECK(luad::server::parse_size("18446744073709551615", n));
}

TEST_CASE("luad run on the actors example: a supervised pool survives a crash") {
  auto r = run_luad("run examples/actors.lua 20");
  CHECK(r.code == 0);
  CHECK(has(r.out, "\"answered\":"));
  CHECK(has(r.out, "\"missing\":[13"));  // the job that crashed w2
}

TEST_CASE(
    "luad run --allow and --data give a one-shot script the store; without them it is refused") {
  temp_dir tmp("luad_run");
  std::string data = (tmp / "data").string();
  std::string script = tmp.write("store_run.lua", R"(
    local store = require("store")
    local ok, err = store.incr("runs")
    if not ok then return err.kind end
    return ok)")
                           .string();
  auto r = run_luad("run --data " + data + " --allow store:cli " + script);
  CHECK(r.code == 0);
  CHECK(r.out == "1\n");
  r = run_luad("run --data " + data + " --allow store:cli " + script);
  CHECK(r.out == "2\n");  // the file persisted between runs
  CHECK(std::filesystem::exists(tmp / "data" / "luad.db"));
  r = run_luad("run --data " + data + " " + script);
  CHECK(r.out == "\"permission_denied\"\n");
  r = run_luad("run --allow store:cli " + script);
  CHECK(r.out == "\"unavailable\"\n");
  r = run_luad("run --allow store:bad/name " + script);
  CHECK(r.code == 2);
  CHECK(has(r.err, "bad store permission"));
}

TEST_CASE("luad run refuses a data directory whose database it cannot use") {
  temp_dir data("luad_run_bad");
  data.write("luad.db", std::string(4096, 'z'));
  auto r = run_luad("run --data " + data.path().string() + " examples/hello.lua");
  CHECK(r.code == 1);
  CHECK(has(r.err, "luad.db"));
  CHECK(has(r.err, "not a database"));
}

TEST_CASE("luad run on the store example: --allow takes one value, so FILE and ARGS follow it") {
  temp_dir data("luad_visits");
  std::string common =
      "run --data " + data.path().string() + " --allow store:visits examples/visits.lua ";
  auto r = run_luad(common + "ada");
  CHECK(r.code == 0);
  CHECK(r.out == "{\"recent\":[\"ada\"],\"visits\":1}\n");
  r = run_luad(common + "bob");
  CHECK(r.out == "{\"recent\":[\"ada\",\"bob\"],\"visits\":2}\n");
}

TEST_CASE("luad check validates a config: 0 for the shipped one, 2 with the line for a bad one") {
  auto r = run_luad("check configs/luad.toml");
  CHECK(r.code == 0);
  CHECK(r.out.find("configs/luad.toml: ok (1 workflows, 2 profiles") == 0);
  temp_dir tmp("luad_run");
  std::string bad = tmp.write("luad_bad.toml", "[server]\nworkers = 1\nsokcet = \"x\"\n").string();
  r = run_luad("check " + bad);
  CHECK(r.code == 2);
  CHECK(has(r.err, "luad_bad.toml:3:"));
  CHECK(has(r.err, "server.sokcet: unknown key"));
  bad = tmp.write("luad_cron.toml",
                  "[[workflow]]\nname = \"w\"\nscript = \"w.lua\"\nschedule = \"61 * * * *\"\n")
            .string();
  r = run_luad("check " + bad);
  CHECK(r.code == 2);
  CHECK(has(r.err,
            "luad_cron.toml:4:12: workflow[1].schedule: schedule \"61 * * * *\": "
            "minute: 61 is out of range 0-59"));
}
