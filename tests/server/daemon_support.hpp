// Test support for the daemon: a daemon on a socket in a fresh folder, a
// blocking line client, and `luad` client commands run as real processes.
#pragma once

#include <doctest/doctest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "server/config.hpp"
#include "server/daemon.hpp"

namespace luad_test {

namespace fs = std::filesystem;

// A daemon on a socket in a fresh folder, served from a thread. Its config
// is written to DIR/luad.toml (so `reload` rereads it); `files` (path
// relative to DIR, text) are written before it starts.
struct running_daemon {
  fs::path dir;
  std::string socket;
  std::unique_ptr<luad::server::daemon> d;
  std::thread th;
  int code = -1;
  std::string limits;   ///< more keys for the [limits] section
  std::string scripts;  ///< more keys for the [scripts] section

  explicit running_daemon(const std::string& extra = "",
                          const std::vector<std::pair<std::string, std::string>>& files = {},
                          std::string limits_extra = "", std::string scripts_extra = "")
      : limits(std::move(limits_extra)), scripts(std::move(scripts_extra)) {
    static std::atomic<int> n{0};
    dir = fs::temp_directory_path() /
          ("luad_daemon_" + std::to_string(::getpid()) + "_" + std::to_string(n++));
    fs::remove_all(dir);
    fs::create_directories(dir / "scripts");
    std::ofstream(dir / "scripts" / "double.lua") << "return (...) * 2\n";
    std::ofstream(dir / "secret.lua") << "return 'outside the roots'\n";
    for (const auto& [path, text] : files) write(path, text);
    socket = (dir / "luad.sock").string();
    write_config(extra);
    d = std::make_unique<luad::server::daemon>(
        luad::server::load_config((dir / "luad.toml").string()));
    d->start();
    th = std::thread([this] { code = d->run(); });
  }
  ~running_daemon() {
    d->request_stop();
    th.join();
    fs::remove_all(dir);
  }
  void write(const std::string& path, const std::string& text) const {
    fs::create_directories((dir / path).parent_path());
    std::ofstream(dir / path) << text;
  }
  /// The base config of every test daemon plus `extra`.
  void write_config(const std::string& extra) const {
    write("luad.toml",
          "[server]\nsocket = \"luad.sock\"\ngrace_period = 0.5\n"
          "[limits]\nmax_request_size = 4096\n" +
              limits + "[scripts]\nroots = [\"scripts\"]\n" + scripts +
              "[[profile]]\nname = \"default\"\npermissions = [\"store:t\"]\n" + extra);
  }
};

// A blocking client: one line out, one line back.
struct client {
  int fd = -1;
  std::string buffered;
  explicit client(const std::string& path) {
    fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::snprintf(a.sun_path, sizeof a.sun_path, "%s", path.c_str());
    REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  }
  ~client() { ::close(fd); }
  bool send(const std::string& line) {
    std::string s = line + "\n";
    std::size_t off = 0;
    while (off < s.size()) {
      ssize_t n = ::send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
      if (n <= 0) return false;
      off += static_cast<std::size_t>(n);
    }
    return true;
  }
  // The next line, or "<closed>".
  std::string line() {
    for (;;) {
      auto nl = buffered.find('\n');
      if (nl != std::string::npos) {
        std::string l = buffered.substr(0, nl);
        buffered.erase(0, nl + 1);
        return l;
      }
      char buf[4096];
      ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) return "<closed>";
      buffered.append(buf, static_cast<std::size_t>(n));
    }
  }
  std::string call(const std::string& line_) {
    REQUIRE(send(line_));
    return line();
  }
};

// The "pid" of a spawn reply.
inline std::string pid_of(const std::string& reply) {
  auto at = reply.find(R"("pid":")");
  REQUIRE(at != std::string::npos);
  return reply.substr(at + 7, reply.find('"', at + 7) - at - 7);
}

// Polls `probe` every 10 ms until it returns true, up to about ten seconds.
template <class F>
bool eventually(F probe) {
  for (int i = 0; i < 1000; ++i) {
    if (probe()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

inline bool has(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

struct cli_result {
  int code;
  std::string out, err;
};

// Runs `luad ARGS` against the daemon at `socket`.
inline cli_result luad_cli(const std::string& socket, const std::string& args) {
  fs::path dir = fs::temp_directory_path() / ("luad_cli_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::string cmd = "LUAD_SOCKET='" + socket + "' '" + LUAD_BINARY + "' " + args + " >'" +
                    (dir / "out").string() + "' 2>'" + (dir / "err").string() + "'";
  int status = std::system(cmd.c_str());
  auto slurp = [](const fs::path& p) {
    std::ifstream in(p);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  cli_result r{WIFEXITED(status) ? WEXITSTATUS(status) : -1, slurp(dir / "out"),
               slurp(dir / "err")};
  fs::remove_all(dir);
  return r;
}

}  // namespace luad_test
