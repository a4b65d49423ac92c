// Logging: one stderr logger for the daemon (text or JSON lines), a tagged
// line per process log, and the tap that feeds the daemon's subscriptions.
//
// DESIGN. In JSON mode the process's pid, workflow and fields must become
// members of the line's object, but spdlog hands a formatter only the message.
// log_from therefore parks them in a thread_local for the duration of the
// (synchronous) log call, and the formatter picks them up.
#include "runtime/logging.hpp"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <ctime>
#include <memory>
#include <mutex>
#include <string>

#include "runtime/process.hpp"
#include "runtime/utf8.hpp"

namespace luad::runtime {

namespace {

std::mutex g_mutex;
std::shared_ptr<spdlog::logger> g_logger;
std::atomic<log_tap*> g_tap{nullptr};

spdlog::level::level_enum to_spd(log_level l) {
  switch (l) {
    case log_level::debug: return spdlog::level::debug;
    case log_level::info: return spdlog::level::info;
    case log_level::warn: return spdlog::level::warn;
    case log_level::error: return spdlog::level::err;
  }
  return spdlog::level::info;
}

// What log_from adds to the line being formatted on this thread.
struct process_fields {
  std::string_view pid, workflow, fields;
};
thread_local const process_fields* t_process = nullptr;

// Appends `s` as a JSON string; bytes that are not UTF-8 become U+FFFD.
void append_json_string(spdlog::memory_buf_t& out, std::string_view s) {
  static constexpr char hex[] = "0123456789abcdef";
  out.push_back('"');
  for (std::size_t i = 0; i < s.size(); ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(c));
    } else if (c == '\n') {
      out.append(std::string_view("\\n"));
    } else if (c == '\t') {
      out.append(std::string_view("\\t"));
    } else if (c < 0x20 || c == 0x7f) {
      const char esc[] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
      out.append(esc, esc + sizeof esc);
    } else if (c < 0x80) {
      out.push_back(static_cast<char>(c));
    } else if (std::size_t len = utf8_sequence(s, i); len > 0) {
      out.append(s.data() + i, s.data() + i + len);
      i += len - 1;
    } else {  // overlongs, surrogates and code points past U+10FFFF too
      out.append(std::string_view("\\ufffd"));
    }
  }
  out.push_back('"');
}

// {"time":"…Z","level":"info","msg":"…","pid":"0.3","workflow":"w","fields":{…}}
class json_line_formatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    std::string stamp = utc_timestamp(msg.time);
    dest.append(std::string_view(R"({"time":")"));
    dest.append(std::string_view(stamp));
    dest.append(std::string_view(R"(","level":")"));
    auto level = spdlog::level::to_string_view(msg.level);
    dest.append(level.data(), level.data() + level.size());
    dest.append(std::string_view(R"(","msg":)"));
    append_json_string(dest, std::string_view(msg.payload.data(), msg.payload.size()));
    if (const process_fields* p = t_process) {
      dest.append(std::string_view(R"(,"pid":)"));
      append_json_string(dest, p->pid);
      if (!p->workflow.empty()) {
        dest.append(std::string_view(R"(,"workflow":)"));
        append_json_string(dest, p->workflow);
      }
      if (!p->fields.empty() && p->fields.front() == '{') {
        dest.append(std::string_view(R"(,"fields":)"));
        dest.append(p->fields.data(), p->fields.data() + p->fields.size());
      } else if (!p->fields.empty()) {  // "(fields not loggable: …)"
        dest.append(std::string_view(R"(,"fields_error":)"));
        append_json_string(dest, p->fields);
      }
    }
    dest.append(std::string_view("}\n"));
  }
  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<json_line_formatter>();
  }
};

std::atomic<bool> g_json{false};

}  // namespace

std::string utc_timestamp(std::chrono::system_clock::time_point t) {
  using namespace std::chrono;
  auto since = t.time_since_epoch();
  std::time_t secs = duration_cast<seconds>(since).count();
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char stamp[80];
  std::snprintf(stamp, sizeof stamp, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(duration_cast<milliseconds>(since).count() % 1000));
  return stamp;
}

std::optional<log_level> parse_level(std::string_view name) {
  for (log_level l : {log_level::debug, log_level::info, log_level::warn, log_level::error})
    if (name == level_name(l)) return l;
  return std::nullopt;
}

const char* level_name(log_level level) {
  switch (level) {
    case log_level::debug: return "debug";
    case log_level::info: return "info";
    case log_level::warn: return "warn";
    case log_level::error: return "error";
  }
  return "info";
}

void init_logging(log_level level, log_format format) {
  std::lock_guard lock(g_mutex);
  if (!g_logger) g_logger = spdlog::stderr_logger_mt("luad");
  g_logger->set_level(to_spd(level));
  g_json = format == log_format::json;
  if (format == log_format::json) {
    g_logger->set_formatter(std::make_unique<json_line_formatter>());
  } else {
    g_logger->set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %^%l%$ %v", spdlog::pattern_time_type::utc);
  }
}

spdlog::logger& logger() {
  {
    std::lock_guard lock(g_mutex);
    if (g_logger) return *g_logger;
  }
  init_logging(log_level::info);
  return *g_logger;
}

void set_log_tap(log_tap* tap) { g_tap.store(tap, std::memory_order_release); }

void log_from(lua_State* L, log_level level, std::string_view msg, std::string_view fields) {
  try {
    process* self = process::of(L);
    std::string pid = self->id().to_string();
    std::string_view owner = self->context().owner;
    std::string_view workflow;
    if (owner.starts_with("workflow:")) workflow = owner.substr(9);
    if (log_tap* tap = g_tap.load(std::memory_order_acquire)) {
      tap->on_log(log_record{self->id().serial, pid, workflow, level, msg, fields});
    }
    spdlog::logger& log = logger();
    if (!log.should_log(to_spd(level))) return;
    if (g_json) {
      process_fields p{pid, workflow, fields};
      t_process = &p;
      log.log(to_spd(level), msg);
      t_process = nullptr;
      return;
    }
    std::string tag = pid;
    if (!workflow.empty()) tag.append(" workflow:").append(workflow);
    if (fields.empty()) {
      log.log(to_spd(level), "[{}] {}", tag, msg);
    } else {
      log.log(to_spd(level), "[{}] {} {}", tag, msg, fields);
    }
  } catch (...) {
    t_process = nullptr;
    // Logging must never take a process or the daemon down.
  }
}

}  // namespace luad::runtime
