// `luad run FILE [args…]`: one script as one process, in-process, no daemon.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/limits.hpp"
#include "server/config.hpp"  // parse_size, which `luad run`'s options use too

namespace luad::server {

struct run_options {
  std::string file;
  std::vector<std::string> args;
  runtime::limits limits;
  unsigned workers = 0;
  std::size_t max_processes = 2'000'000;
  /// Granted to the process (--allow), e.g. "http:127.0.0.1:8080", "store:demo".
  std::vector<std::string> permissions;
  /// The store's folder (--data); empty: store calls fail with `unavailable`.
  std::string data_dir;
};

/// Exit codes of `luad run`.
enum run_status : int {
  run_ok = 0,      ///< the process ended normally
  run_error = 1,   ///< it raised an error (or failed to compile)
  run_usage = 2,   ///< bad command line
  run_limit = 3,   ///< it hit its memory or instruction limit
  run_killed = 4,  ///< it was killed or shut down
};

/// Runs the script to completion: return values as JSON, one per line, on
/// stdout; a non-normal exit as one JSON object on stderr. Returns the code.
int run_script(const run_options& opts);

}  // namespace luad::server
