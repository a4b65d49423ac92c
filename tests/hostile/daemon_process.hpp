// The real `luad serve` as a child process, for the hostile tests: a crash or a
// hang of the daemon is then seen (and survived) by the test, its RSS is its
// own, and a stuck daemon can still be SIGKILLed at the end.
#pragma once

#include <doctest/doctest.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>
#include <thread>

#include <boost/json.hpp>

#include "proto/json_rpc.hpp"
#include "runtime/sanitizers.hpp"
#include "tests/support.hpp"

namespace luad_hostile {

namespace fs = std::filesystem;
namespace json = boost::json;
using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

using luad::runtime::asan_build;
using luad::test::tsan_build;
/// Under either sanitizer the daemon runs several times slower and (TSan's
/// shadow memory) larger: time bounds are those of ASan; correctness is what
/// these builds check, the release build holds the real bounds.
inline constexpr bool sanitizer_build = asan_build || tsan_build;

/// Milliseconds between two time points, as a double.
inline double ms_between(clock_type::time_point a, clock_type::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

/// A connection to a daemon's socket whose reads give up after a deadline
/// (a daemon that stalls must fail a check, not hang the test). Nothing here
/// REQUIREs: a dead daemon is an outcome the caller reports.
class line_client {
 public:
  explicit line_client(const std::string& path) {
    fd_ = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::snprintf(a.sun_path, sizeof a.sun_path, "%s", path.c_str());
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      ::close(fd_);
      fd_ = -1;
    }
  }
  ~line_client() {
    if (fd_ >= 0) ::close(fd_);
  }
  line_client(const line_client&) = delete;
  line_client& operator=(const line_client&) = delete;

  bool connected() const { return fd_ >= 0; }
  int fd() const { return fd_; }

  /// Writes all of `bytes`; false once the peer is gone.
  bool send_raw(std::string_view bytes) {
    for (std::size_t off = 0; fd_ >= 0 && off < bytes.size();) {
      ssize_t n = ::send(fd_, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
      if (n <= 0) return false;
      off += static_cast<std::size_t>(n);
    }
    return fd_ >= 0;
  }
  /// Sends a request; returns its id.
  std::int64_t request(std::string_view method, json::object params = {}) {
    std::int64_t id = next_id_++;
    send_raw(luad::proto::frame(luad::proto::make_request(id, method, std::move(params))));
    return id;
  }
  /// The next line within `limit`, or nothing (timeout, closed, error).
  std::optional<std::string> line(std::chrono::milliseconds limit) {
    auto end = clock_type::now() + limit;
    for (;;) {
      auto nl = buffered_.find('\n');
      if (nl != std::string::npos) {
        std::string l = buffered_.substr(0, nl);
        buffered_.erase(0, nl + 1);
        return l;
      }
      auto left = std::chrono::duration_cast<std::chrono::microseconds>(end - clock_type::now());
      if (fd_ < 0 || left.count() <= 0) return std::nullopt;
      timeval tv{static_cast<time_t>(left.count() / 1000000),
                 static_cast<suseconds_t>(left.count() % 1000000)};
      ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      char buf[65536];
      ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n == 0) return std::nullopt;
      if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) continue;
        return std::nullopt;
      }
      buffered_.append(buf, static_cast<std::size_t>(n));
    }
  }
  /// The next line as a JSON object within `limit`, or null.
  json::value next(std::chrono::milliseconds limit) {
    auto l = line(limit);
    if (!l) return nullptr;
    boost::system::error_code ec;
    json::value v = json::parse(*l, ec);
    return ec || !v.is_object() ? json::value(nullptr) : v;
  }
  /// Sends a request and returns its reply (lines for other ids are skipped),
  /// or null when none came within `limit`.
  json::value call(std::string_view method, json::object params = {},
                   std::chrono::milliseconds limit = 5s) {
    std::int64_t id = request(method, std::move(params));
    auto end = clock_type::now() + limit;
    for (;;) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - clock_type::now());
      if (left.count() <= 0) return nullptr;
      json::value v = next(left);
      if (v.is_null()) return nullptr;
      const json::value* got = v.as_object().if_contains("id");
      if (got && *got == id) return v;
    }
  }

 private:
  int fd_ = -1;
  std::string buffered_;
  std::int64_t next_id_ = 1;
};

/// `luad serve --config DIR/luad.toml` in a fresh folder, its output in
/// DIR/daemon.log. The config text is given whole (tests pick every key).
class daemon_process {
 public:
  /// Writes `config` (its socket must be "luad.sock") and starts the daemon;
  /// started() is false when it did not answer a ping within 20 s.
  explicit daemon_process(const std::string& config) {
    dir_.write("luad.toml", config);
    start();
  }
  ~daemon_process() { stop(2s); }
  daemon_process(const daemon_process&) = delete;
  daemon_process& operator=(const daemon_process&) = delete;

  const fs::path& dir() const { return dir_.path(); }
  std::string socket() const { return (dir_ / "luad.sock").string(); }
  pid_t pid() const { return pid_; }
  bool started() const { return started_; }

  /// Starts it again (after a crash or a stop), in the same folder.
  void start() {
    std::string log = (dir_ / "daemon.log").string();
    std::string conf = (dir_ / "luad.toml").string();
    exit_status_.reset();
    pid_t child = ::fork();
    if (child == 0) {
      int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      ::execl(LUAD_BINARY, LUAD_BINARY, "serve", "--config", conf.c_str(),
              static_cast<char*>(nullptr));
      ::_exit(127);
    }
    pid_ = child;
    started_ = luad::test::eventually(
        [&] {
          if (!alive()) return true;
          line_client c(socket());
          return c.connected() && !c.call("ping", {}, 1s).is_null();
        },
        20s);  // (a loaded CI machine, a database to join)
    started_ = started_ && alive();
  }

  /// True while the child runs (reaps it, and remembers how it ended, once it has).
  bool alive() {
    if (exit_status_) return false;
    int status = 0;
    pid_t got = ::waitpid(pid_, &status, WNOHANG);
    if (got == 0) return true;
    exit_status_ = got == pid_ ? status : -1;
    return false;
  }
  /// How it ended: "exit 0", "signal 11", or "running".
  std::string how_it_ended() {
    if (alive()) return "running";
    int s = *exit_status_;
    if (WIFEXITED(s)) return "exit " + std::to_string(WEXITSTATUS(s));
    if (WIFSIGNALED(s)) return "signal " + std::to_string(WTERMSIG(s));
    return "status " + std::to_string(s);
  }

  /// SIGTERM, then SIGKILL after `grace`. Returns true when it exited 0 by itself.
  bool stop(std::chrono::milliseconds grace) {
    if (!alive()) return exit_ok();
    ::kill(pid_, SIGTERM);
    bool ended = luad::test::eventually([&] { return !alive(); }, grace);
    if (!ended) {
      ::kill(pid_, SIGKILL);
      luad::test::eventually([&] { return !alive(); }, 10s);
      return false;
    }
    return exit_ok();
  }

  /// The daemon's resident set in KiB (VmRSS), or 0 when it is gone.
  std::size_t rss_kib() const {
    std::ifstream in("/proc/" + std::to_string(pid_) + "/status");
    std::string key;
    while (in >> key) {
      if (key == "VmRSS:") {
        std::size_t kib = 0;
        in >> kib;
        return kib;
      }
      in.ignore(1 << 16, '\n');
    }
    return 0;
  }

  /// The last `max` bytes of its log, for failure messages.
  std::string log_tail(std::size_t max = 3000) const {
    std::ifstream in(dir_ / "daemon.log");
    std::string text(std::istreambuf_iterator<char>(in), {});
    return text.size() > max ? text.substr(text.size() - max) : text;
  }

 private:
  bool exit_ok() const {
    return exit_status_ && WIFEXITED(*exit_status_) && WEXITSTATUS(*exit_status_) == 0;
  }

  luad::test::temp_dir dir_{"luad_hostile"};
  std::atomic<pid_t> pid_{-1};  // read by observer threads
  bool started_ = false;
  std::optional<int> exit_status_;
};

}  // namespace luad_hostile
