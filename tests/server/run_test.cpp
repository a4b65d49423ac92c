// `luad run` end to end: the real binary, its stdout, stderr and exit codes.
#include <doctest/doctest.h>

#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "server/run.hpp"

namespace {

struct result {
  int code;
  std::string out, err;
};

std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// Runs `luad <args>` from the source directory, capturing both streams.
result run_luad(const std::string& args) {
  auto dir =
      std::filesystem::temp_directory_path() / ("luad_run_test_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::string cmd = std::string("cd '") + LUAD_SOURCE_DIR + "' && '" + LUAD_BINARY + "' " + args +
                    " >'" + (dir / "out").string() + "' 2>'" + (dir / "err").string() + "'";
  int status = std::system(cmd.c_str());
  result r{WIFEXITED(status) ? WEXITSTATUS(status) : -1, slurp(dir / "out"), slurp(dir / "err")};
  std::filesystem::remove_all(dir);
  return r;
}

std::string write_script(const std::string& name, const std::string& text) {
  auto p = std::filesystem::temp_directory_path() / name;
  std::ofstream(p) << text;
  return p.string();
}

}  // namespace

TEST_CASE("luad run prints return values as JSON lines and exits 0") {
  auto path = write_script("luad_ok.lua", "local a = ... return a, 42, {b = true, a = {1, 2.5}}");
  auto r = run_luad("run " + path + " hi");
  CHECK(r.code == 0);
  CHECK(r.out == "\"hi\"\n42\n{\"a\":[1,2.5],\"b\":true}\n");
}

TEST_CASE("luad run on the shipped example succeeds") {
  auto r = run_luad("run examples/hello.lua tester");
  CHECK(r.code == 0);
  CHECK(r.out.find("\"greeting\":\"hello, tester\"") != std::string::npos);
  CHECK(r.err.find("hello tester") != std::string::npos);  // the log line, tagged with a pid
}

TEST_CASE("luad run reports a runtime error as structured JSON on stderr, exit 1") {
  auto path = write_script("luad_err.lua", "local function f() error('bad thing') end f()");
  auto r = run_luad("run " + path);
  CHECK(r.code == luad::server::run_error);
  CHECK(r.out.empty());
  CHECK(r.err.find("\"reason\":\"error\"") != std::string::npos);
  CHECK(r.err.find("\"kind\":\"runtime\"") != std::string::npos);
  CHECK(r.err.find("bad thing") != std::string::npos);
  CHECK(r.err.find("\"traceback\"") != std::string::npos);
}

TEST_CASE("luad run enforces --memory and --instructions with exit code 3") {
  auto bomb = write_script("luad_bomb.lua", "local t = {} for i = 1, 1e9 do t[i] = i end");
  auto r = run_luad("run --memory 2MiB " + bomb);
  CHECK(r.code == luad::server::run_limit);
  CHECK(r.err.find("\"reason\":\"limit\"") != std::string::npos);
  auto loop = write_script("luad_loop.lua", "while true do end");
  r = run_luad("run --instructions 1000000 " + loop);
  CHECK(r.code == luad::server::run_limit);
  CHECK(r.err.find("instruction limit") != std::string::npos);
}

TEST_CASE("luad run: missing file, syntax error and bad options fail clearly") {
  auto r = run_luad("run does/not/exist.lua");
  CHECK(r.code == luad::server::run_error);
  CHECK(r.err.find("\"kind\":\"not_found\"") != std::string::npos);
  auto bad = write_script("luad_syntax.lua", "return = 1");
  r = run_luad("run " + bad);
  CHECK(r.code == luad::server::run_error);
  CHECK(r.err.find("\"kind\":\"syntax\"") != std::string::npos);
  r = run_luad("run --memory lots " + bad);
  CHECK(r.code == luad::server::run_usage);
  CHECK(r.err.find("--memory") != std::string::npos);
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
}

TEST_CASE("luad run on the actors example: a supervised pool survives a crash") {
  auto r = run_luad("run examples/actors.lua 20");
  CHECK(r.code == 0);
  CHECK(r.out.find("\"answered\":") != std::string::npos);
  CHECK(r.out.find("\"missing\":[13") != std::string::npos);  // the job that crashed w2
}

TEST_CASE(
    "luad run --allow and --data give a one-shot script the store; without them it is refused") {
  auto data =
      std::filesystem::temp_directory_path() / ("luad_run_data_" + std::to_string(::getpid()));
  std::filesystem::remove_all(data);
  std::string script = write_script("luad_store_run.lua", R"(
    local store = require("store")
    local ok, err = store.incr("runs")
    if not ok then return err.kind end
    return ok)");
  auto r = run_luad("run --data " + data.string() + " --allow store:cli " + script);
  CHECK(r.code == 0);
  CHECK(r.out == "1\n");
  r = run_luad("run --data " + data.string() + " --allow store:cli " + script);
  CHECK(r.out == "2\n");  // the file persisted between runs
  CHECK(std::filesystem::exists(data / "luad.db"));
  r = run_luad("run --data " + data.string() + " " + script);
  CHECK(r.out == "\"permission_denied\"\n");
  r = run_luad("run --allow store:cli " + script);
  CHECK(r.out == "\"unavailable\"\n");
  r = run_luad("run --allow store:bad/name " + script);
  CHECK(r.code == 2);
  CHECK(r.err.find("bad store permission") != std::string::npos);
  std::filesystem::remove_all(data);
}

TEST_CASE("luad run refuses a data directory whose database it cannot use") {
  auto data =
      std::filesystem::temp_directory_path() / ("luad_run_bad_" + std::to_string(::getpid()));
  std::filesystem::remove_all(data);
  std::filesystem::create_directories(data);
  std::ofstream(data / "luad.db") << std::string(4096, 'z');
  auto r = run_luad("run --data " + data.string() + " examples/hello.lua");
  CHECK(r.code == 1);
  CHECK(r.err.find("luad.db") != std::string::npos);
  CHECK(r.err.find("not a database") != std::string::npos);
  std::filesystem::remove_all(data);
}

TEST_CASE("luad run on the store example: --allow takes one value, so FILE and ARGS follow it") {
  auto data =
      std::filesystem::temp_directory_path() / ("luad_visits_" + std::to_string(::getpid()));
  std::filesystem::remove_all(data);
  std::string common = "run --data " + data.string() + " --allow store:visits examples/visits.lua ";
  auto r = run_luad(common + "ada");
  CHECK(r.code == 0);
  CHECK(r.out == "{\"recent\":[\"ada\"],\"visits\":1}\n");
  r = run_luad(common + "bob");
  CHECK(r.out == "{\"recent\":[\"ada\",\"bob\"],\"visits\":2}\n");
  std::filesystem::remove_all(data);
}

TEST_CASE("luad check validates a config: 0 for the shipped one, 2 with the line for a bad one") {
  auto r = run_luad("check configs/luad.toml");
  CHECK(r.code == 0);
  CHECK(r.out.find("configs/luad.toml: ok (1 workflows, 2 profiles") == 0);
  std::string bad = write_script("luad_bad.toml", "[server]\nworkers = 1\nsokcet = \"x\"\n");
  r = run_luad("check " + bad);
  CHECK(r.code == 2);
  CHECK(r.err.find("luad_bad.toml:3:") != std::string::npos);
  CHECK(r.err.find("server.sokcet: unknown key") != std::string::npos);
}
