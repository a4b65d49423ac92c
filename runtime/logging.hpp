// The daemon's logger (spdlog to stderr) and log lines written by processes.
#pragma once

#include <string_view>

#include "runtime/lua.hpp"

namespace spdlog {
class logger;
}

namespace luad::runtime {

enum class log_level { debug, info, warn, error };

/// Sets up the "luad" stderr logger (text lines, UTC timestamps) at `level`.
/// Safe to call more than once; the last call wins.
void init_logging(log_level level);

/// The "luad" logger (created with defaults on first use).
spdlog::logger& logger();

/// Writes a log line for the process running `L`, tagged with its pid.
/// `fields` is preformatted `key=value` text (may be empty). Does not raise.
void log_from(lua_State* L, log_level level, std::string_view msg, std::string_view fields = {});

}  // namespace luad::runtime
