// Test support for the metrics: a raw HTTP/1.1 client over loopback TCP (a
// request's bytes as given, the answer read until the server closes), free
// ports, a sample's value in an exposition, and shell commands (promtool) with
// their output.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <string_view>

#include "tests/support.hpp"

namespace luad_metrics_test {

/// A port on 127.0.0.1 that was free a moment ago (bound, read, closed).
inline std::uint16_t free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

/// A TCP connection to 127.0.0.1:port whose reads give up after `limit`.
class tcp_client {
 public:
  explicit tcp_client(std::uint16_t port,
                      std::chrono::milliseconds limit = std::chrono::seconds(10)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      ::close(fd_);
      fd_ = -1;
      return;
    }
    timeval tv{static_cast<time_t>(limit.count() / 1000),
               static_cast<suseconds_t>(limit.count() % 1000 * 1000)};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  ~tcp_client() {
    if (fd_ >= 0) ::close(fd_);
  }
  tcp_client(const tcp_client&) = delete;
  tcp_client& operator=(const tcp_client&) = delete;

  bool connected() const { return fd_ >= 0; }
  /// Writes all of `bytes`; false once the peer is gone.
  bool send(std::string_view bytes) {
    for (std::size_t off = 0; fd_ >= 0 && off < bytes.size();) {
      ssize_t n = ::send(fd_, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
      if (n <= 0) return false;
      off += static_cast<std::size_t>(n);
    }
    return fd_ >= 0;
  }
  /// Everything the server sends until it closes the connection (or the
  /// read limit passes: then what came so far, and timed_out() is true).
  std::string read_all() {
    std::string out;
    char buf[16384];
    for (;;) {
      ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n > 0) {
        out.append(buf, static_cast<std::size_t>(n));
        continue;
      }
      timed_out_ = n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
      return out;
    }
  }
  bool timed_out() const { return timed_out_; }

 private:
  int fd_ = -1;
  bool timed_out_ = false;
};

/// An HTTP answer, split.
struct http_answer {
  int status = 0;  ///< 0: no answer
  std::string head, body;
  /// The value of header `name` (as the server spelled it), or "".
  std::string header(std::string_view name) const {
    std::string key = "\r\n" + std::string(name) + ": ";
    auto at = head.find(key);
    if (at == std::string::npos) return "";
    auto end = head.find("\r\n", at + key.size());
    return head.substr(at + key.size(), end - at - key.size());
  }
};

/// The first answer in `raw` (status line, head, body; a chunked body
/// joined).
inline http_answer parse_answer(const std::string& raw) {
  http_answer a;
  if (raw.rfind("HTTP/1.1 ", 0) != 0) return a;
  a.status = std::atoi(raw.c_str() + 9);
  auto end = raw.find("\r\n\r\n");
  a.head = raw.substr(0, end);
  if (end == std::string::npos) return a;
  a.body = raw.substr(end + 4);
  if (a.header("Transfer-Encoding") != "chunked") return a;
  std::string joined;
  for (std::size_t at = 0;;) {
    std::size_t line_end = a.body.find("\r\n", at);
    if (line_end == std::string::npos) break;
    std::size_t size = std::stoul(a.body.substr(at, line_end - at), nullptr, 16);
    if (size == 0) break;
    joined += a.body.substr(line_end + 2, size);
    at = line_end + 2 + size + 2;
  }
  a.body = std::move(joined);
  return a;
}

/// GET `target` from 127.0.0.1:port on a fresh connection (closed after).
inline http_answer http_get(std::uint16_t port, const std::string& target) {
  tcp_client c(port);
  if (!c.connected()) return {};
  c.send("GET " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
  return parse_answer(c.read_all());
}

/// The value of the sample `series` (name and labels exactly as written) in
/// an exposition, or NaN when it has none.
inline double sample(const std::string& exposition, const std::string& series) {
  std::istringstream in(exposition);
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(series + " ", 0) == 0) return std::stod(line.substr(series.size() + 1));
  return std::nan("");
}

struct shell_result {
  int code = -1;
  std::string out;  ///< stdout and stderr together
};

/// Runs `command` with sh; its output and exit code.
inline shell_result shell(const std::string& command) {
  luad::test::temp_dir dir("luad_shell");
  std::string out = (dir / "out").string();
  int status = std::system((command + " >'" + out + "' 2>&1").c_str());
  std::ifstream in(out);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1,
          std::string(std::istreambuf_iterator<char>(in), {})};
}

/// `promtool check metrics` on `exposition` (its exit code 0 means no
/// errors and no lint problems; the output says what was found).
inline shell_result promtool_check(const std::string& exposition) {
  luad::test::temp_dir dir("luad_promtool");
  std::ofstream(dir / "metrics.txt") << exposition;
  return shell("promtool check metrics < '" + (dir / "metrics.txt").string() + "'");
}

}  // namespace luad_metrics_test
