// The daemon's logger (spdlog to stderr, text or JSON lines) and log lines
// written by processes, which also go to an optional tap (the daemon's log
// subscriptions).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "runtime/lua.hpp"

namespace spdlog {
class logger;
}

namespace luad::runtime {

enum class log_level { debug, info, warn, error };
enum class log_format {
  text,  ///< `2026-11-22T10:00:00.000Z info [0.12 workflow:ticker] msg {"k":1}`
  json,  ///< one object a line: time, level, msg, and pid/workflow/fields when known
};

/// "2026-11-22T10:00:00.000Z" (UTC, milliseconds), as log lines show time.
std::string utc_timestamp(std::chrono::system_clock::time_point t);

/// "debug", "info", "warn" or "error".
const char* level_name(log_level level);
/// The level named `name` (as level_name spells it), or nullopt.
std::optional<log_level> parse_level(std::string_view name);

/// Sets up the "luad" stderr logger (UTC timestamps) at `level` in `format`.
/// Safe to call more than once; the last call wins.
void init_logging(log_level level, log_format format = log_format::text);

/// The "luad" logger (created with defaults on first use).
spdlog::logger& logger();

/// One line a process logged, as a tap sees it. The views live only for the
/// call.
struct log_record {
  std::uint64_t pid_serial;
  std::string_view pid;       ///< "0.12"
  std::string_view workflow;  ///< the config workflow the process runs for, or empty
  log_level level;
  std::string_view message;
  std::string_view fields;  ///< a JSON object's text, or empty
};

/// Receives every line processes log, at any level, on the logging thread.
/// Must be quick and must not throw.
class log_tap {
 public:
  virtual ~log_tap() = default;
  virtual void on_log(const log_record& rec) noexcept = 0;
};

/// Installs (or with nullptr removes) the tap. The caller keeps it alive until
/// it has been removed and no process runs any more.
void set_log_tap(log_tap* tap);

/// Writes a log line for the process running `L`, tagged with its pid and
/// workflow. `fields` is a JSON object's text (may be empty). Does not raise.
void log_from(lua_State* L, log_level level, std::string_view msg, std::string_view fields = {});

}  // namespace luad::runtime
