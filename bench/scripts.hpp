// Running the Lua scripts under bench/lua/ as processes, for the benchmarks
// that are driven from Lua (messaging, cpu_peer, lateness).
#pragma once

#include <string>
#include <vector>

#include "runtime/value.hpp"
#include "server/engine.hpp"

namespace luad::bench {

/// The path of bench/lua/<name> in the source tree.
std::string bench_script(const char* name);

/// What run_script saw: the wall time from the spawn until the exit reached
/// the calling thread, and the script's results.
struct script_run {
  double seconds = 0;
  std::vector<runtime::value> results;
};

/// Runs bench/lua/<name> as one process with `args`, its chunk taken from the
/// scheduler's code cache, under a 1 GiB memory limit (the orchestrators hold
/// big tables of pids). Exits the program if it does not end normally.
script_run run_script(server::engine& eng, const char* name, std::vector<runtime::value> args);

/// A number result (integer or float) as a double; 0 for anything else.
double number(const runtime::value& v);

}  // namespace luad::bench
