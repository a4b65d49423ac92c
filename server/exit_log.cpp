// Log lines for failed processes, under a token bucket (exit_log.hpp).
#include "server/exit_log.hpp"

#include <spdlog/spdlog.h>
#include <boost/asio/post.hpp>

#include <algorithm>
#include <string>

#include "runtime/logging.hpp"

namespace luad::server {

namespace {

// `s` cut to `max` bytes, with control characters escaped, so that one exit
// is one line and a message cannot forge the lines after it.
std::string one_line(std::string_view s, std::size_t max) {
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  out.reserve(std::min(s.size(), max) + 8);
  for (std::size_t i = 0; i < s.size() && i < max; ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7f) {
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  if (s.size() > max) out += "...";
  return out;
}

}  // namespace

void exit_log::on_exit(const runtime::exit_info& e, const runtime::process_context& ctx,
                       std::string_view script) noexcept {
  if (e.reason != runtime::exit_reason::error && e.reason != runtime::exit_reason::limit) return;
  try {
    {
      std::lock_guard lock(mu_);
      if (!take_token()) {
        ++suppressed_;
        ++suppressed_total_;
        arm_summary();
        return;
      }
    }
    std::string_view workflow;
    if (ctx.owner.starts_with("workflow:")) workflow = std::string_view(ctx.owner).substr(9);
    runtime::logger().warn("process {} ({}{}{}) ended: {} ({}): {}", e.id.to_string(),
                           one_line(script, 256), workflow.empty() ? "" : ", workflow ",
                           one_line(workflow, 128), runtime::reason_name(e.reason),
                           runtime::kind_name(e.err.kind), one_line(e.err.message, message_bytes));
  } catch (...) {
    // Out of memory or a failing sink: the exit is still counted and shown elsewhere.
  }
}

std::uint64_t exit_log::suppressed_total() const {
  std::lock_guard lock(mu_);
  return suppressed_total_;
}

bool exit_log::take_token() {
  auto now = std::chrono::steady_clock::now();
  std::chrono::duration<double> since = now - refilled_;
  tokens_ = std::min(burst, tokens_ + since.count() * per_second);
  refilled_ = now;
  if (tokens_ < 1) return false;
  tokens_ -= 1;
  return true;
}

// One summary per `summary_after_` at most while lines are being left out.
void exit_log::arm_summary() {
  if (summary_armed_) return;
  summary_armed_ = true;
  boost::asio::post(io_, [this] {
    timer_.expires_after(summary_after_);
    timer_.async_wait([this](boost::system::error_code ec) {
      if (!ec) log_summary();
    });
  });
}

void exit_log::log_summary() {
  std::uint64_t n = 0;
  {
    std::lock_guard lock(mu_);
    n = suppressed_;
    suppressed_ = 0;
    summary_armed_ = false;
  }
  if (n > 0)
    runtime::logger().warn("{} similar lines suppressed (processes that ended in error or limit)",
                           n);
}

}  // namespace luad::server
