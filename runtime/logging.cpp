// Logging: one stderr logger for the daemon and a pid-tagged line per process log.
#include "runtime/logging.hpp"

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <memory>
#include <mutex>

#include "runtime/process.hpp"

namespace luad::runtime {

namespace {

std::mutex g_mutex;
std::shared_ptr<spdlog::logger> g_logger;

spdlog::level::level_enum to_spd(log_level l) {
  switch (l) {
    case log_level::debug: return spdlog::level::debug;
    case log_level::info: return spdlog::level::info;
    case log_level::warn: return spdlog::level::warn;
    case log_level::error: return spdlog::level::err;
  }
  return spdlog::level::info;
}

}  // namespace

void init_logging(log_level level) {
  std::lock_guard lock(g_mutex);
  if (!g_logger) g_logger = spdlog::stderr_logger_mt("luad");
  g_logger->set_level(to_spd(level));
  g_logger->set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %^%l%$ %v", spdlog::pattern_time_type::utc);
}

spdlog::logger& logger() {
  {
    std::lock_guard lock(g_mutex);
    if (g_logger) return *g_logger;
  }
  init_logging(log_level::info);
  return *g_logger;
}

void log_from(lua_State* L, log_level level, std::string_view msg, std::string_view fields) {
  try {
    spdlog::logger& log = logger();
    if (!log.should_log(to_spd(level))) return;
    std::string pid = process::of(L)->id().to_string();
    if (fields.empty()) {
      log.log(to_spd(level), "[{}] {}", pid, msg);
    } else {
      log.log(to_spd(level), "[{}] {} {}", pid, msg, fields);
    }
  } catch (...) {
    // Logging must never take a process or the daemon down.
  }
}

}  // namespace luad::runtime
