// cpu_peer: CPU-bound Lua (bench/lua/fib.lua, bench/lua/tables.lua) run in
// luad beside the stock lua5.4 interpreter on the same file, alternating, both
// timed from outside; and lateness: the luad twin of the Erlang peer's
// sleep10ms_late_* (bench/lua/lateness.lua).
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "bench/benchmarks.hpp"
#include "bench/scripts.hpp"
#include "runtime/code.hpp"
#include "server/engine.hpp"

namespace luad::bench {

namespace {

using runtime::value;
using server::engine;

constexpr std::int64_t k_fib_n = 32;         // fib.lua's argument (its default)
constexpr std::int64_t k_table_rounds = 30;  // tables.lua's argument (its default)
constexpr int k_rounds = 3;                  // alternating rounds after the warm-ups

// A result as lua5.4's print() shows it, so both runs compare as text.
std::string lua_text(const value& v) {
  if (const auto* i = v.get<std::int64_t>()) return std::to_string(*i);
  if (const auto* s = v.get<std::string>()) return *s;
  if (const auto* b = v.get<bool>()) return *b ? "true" : "false";
  if (const auto* d = v.get<double>()) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.14g", *d);
    std::string text = buf;
    if (text.find_first_not_of("-0123456789") == std::string::npos) text += ".0";
    return text;
  }
  return "nil";
}

bool have_lua() { return std::system("command -v lua5.4 > /dev/null 2>&1") == 0; }

// Reads `fd` to its end.
std::string read_all(int fd) {
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = read(fd, buf, sizeof buf)) != 0;) {
    if (n > 0)
      out.append(buf, static_cast<std::size_t>(n));
    else if (errno != EINTR)
      break;
  }
  return out;
}

// `lua5.4 -e 'print(assert(loadfile(PATH))(ARG))'`: the file's main chunk
// gets ARG as `...` (an integer, as luad's spawn passes it) and its results
// are printed; timed from the spawn until waitpid. The printed line (without
// its newline) is the result. Exits the program if lua5.4 fails.
std::pair<double, std::string> run_lua(const char* name, std::int64_t arg) {
  std::string code =
      "print(assert(loadfile([==[" + bench_script(name) + "]==]))(" + std::to_string(arg) + "))";
  char* argv[] = {const_cast<char*>("lua5.4"), const_cast<char*>("-e"), code.data(), nullptr};
  int out[2];
  if (pipe2(out, O_CLOEXEC) != 0) std::exit(1);  // the child keeps only its stdout
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, out[1], STDOUT_FILENO);
  pid_t pid = 0;
  auto t0 = wall_clock::now();
  int err = posix_spawnp(&pid, "lua5.4", &fa, nullptr, argv, environ);
  close(out[1]);
  std::string text = err == 0 ? read_all(out[0]) : "";
  int status = 0;
  if (err == 0) waitpid(pid, &status, 0);
  double secs = seconds_since(t0);
  close(out[0]);
  posix_spawn_file_actions_destroy(&fa);
  if (err != 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    note(std::string(name) + " failed in lua5.4");
    std::exit(1);
  }
  while (!text.empty() && text.back() == '\n') text.pop_back();
  return {secs, text};
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// One script, one warm-up each, then k_rounds alternating rounds; reports
// cpu_<tag>_luad, and with lua5.4 present cpu_<tag>_lua and the ratio.
void compare(engine& eng, const std::string& tag, const char* name, std::int64_t arg, bool peer) {
  std::string expect = lua_text(run_script(eng, name, {value(arg)}).results.at(0));
  if (peer && run_lua(name, arg).second != expect) {
    note(std::string(name) + ": lua5.4 printed another result than luad's " + expect);
    std::exit(1);
  }
  std::vector<double> luad, lua;
  for (int i = 0; i < k_rounds; ++i) {
    script_run in = run_script(eng, name, {value(arg)});
    luad.push_back(in.seconds);
    if (!peer) continue;
    auto [secs, text] = run_lua(name, arg);
    if (text != expect || lua_text(in.results.at(0)) != expect) {
      note(std::string(name) + ": results differ (" + text + " against " + expect + ")");
      std::exit(1);
    }
    lua.push_back(secs);
  }
  note("cpu_peer: " + std::string(name) + " returned " + expect + (peer ? " in both" : ""));
  report("cpu_" + tag + "_luad", median(luad), "s");
  if (!peer) return;
  report("cpu_" + tag + "_lua", median(lua), "s");
  report("cpu_" + tag + "_ratio", median(lua) / median(luad), "x");
}

}  // namespace

void bench_cpu_peer(const options& opts) {
  engine eng(runtime::scheduler_options::with_workers(opts.workers));
  bool peer = have_lua();
  if (!peer) note("cpu_peer: lua5.4 not installed (apt-get install -y lua5.4): luad figures only");
  compare(eng, "fib" + std::to_string(k_fib_n), "fib.lua", k_fib_n, peer);
  compare(eng, "tables", "tables.lua", k_table_rounds, peer);
}

void bench_lateness(const options& opts) {
  engine eng(runtime::scheduler_options::with_workers(opts.workers));
  (void)run_script(eng, "lateness.lua", {value(20)});  // warm-up
  auto n = static_cast<std::int64_t>(opts.lateness);
  script_run t = run_script(eng, "lateness.lua", {value(n)});
  note("lateness: " + std::to_string(n) + " sleeps of 10 ms in " + std::to_string(t.seconds) +
       " s");
  auto us = [&](std::size_t i) {
    const auto* v = t.results.at(i).get<std::int64_t>();
    return v ? static_cast<double>(*v) : -1.0;
  };
  report("sleep10ms_late_p50", us(0), "us");
  report("sleep10ms_late_p99", us(1), "us");
  report("sleep10ms_late_max", us(2), "us");
}

}  // namespace luad::bench
