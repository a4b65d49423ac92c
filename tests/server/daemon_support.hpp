// Test support for the daemon: a daemon on a socket in a fresh folder, a
// blocking client that speaks proto/json_rpc (and raw lines, for bad input),
// and `luad` client commands run as real processes.
#pragma once

#include <doctest/doctest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <boost/json.hpp>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "proto/json_rpc.hpp"
#include "server/config.hpp"
#include "server/daemon.hpp"
#include "tests/support.hpp"

namespace luad_test {

namespace fs = std::filesystem;
namespace json = boost::json;
namespace proto = luad::proto;
using luad::test::eventually;
using luad::test::has;
using luad::test::temp_dir;

// A daemon on a socket in a fresh folder, served from a thread. Its config
// is written to DIR/luad.toml (so `reload` rereads it); `files` (path
// relative to DIR, text) are written before it starts.
struct running_daemon {
  temp_dir tmp{"luad_daemon"};
  fs::path dir = tmp.path();
  std::string socket = (dir / "luad.sock").string();
  std::unique_ptr<luad::server::daemon> d;
  std::thread th;
  int code = -1;
  std::string limits;   ///< more keys for the [limits] section
  std::string scripts;  ///< more keys for the [scripts] section

  explicit running_daemon(const std::string& extra = "",
                          const std::vector<std::pair<std::string, std::string>>& files = {},
                          std::string limits_extra = "", std::string scripts_extra = "")
      : limits(std::move(limits_extra)), scripts(std::move(scripts_extra)) {
    write("scripts/double.lua", "return (...) * 2\n");
    write("secret.lua", "return 'outside the roots'\n");
    for (const auto& [path, text] : files) write(path, text);
    write_config(extra);
    d = std::make_unique<luad::server::daemon>(
        luad::server::load_config((dir / "luad.toml").string()));
    d->start();
    th = std::thread([this] { code = d->run(); });
  }
  ~running_daemon() {
    d->request_stop();
    th.join();
  }
  running_daemon(const running_daemon&) = delete;
  running_daemon& operator=(const running_daemon&) = delete;

  void write(const std::string& path, const std::string& text) const { tmp.write(path, text); }
  /// The base config of every test daemon plus `extra`.
  void write_config(const std::string& extra) const {
    write("luad.toml",
          "[server]\nsocket = \"luad.sock\"\ngrace_period = 0.5\n"
          "[limits]\nmax_request_size = 4096\n" +
              limits + "[scripts]\nroots = [\"scripts\"]\n" + scripts +
              "[[profile]]\nname = \"default\"\npermissions = [\"store:t\"]\n" + extra);
  }
};

// The value at JSON pointer `ptr` ("/result/reason") in `v`, or the string
// "<no PTR>" so that a failed CHECK shows what was missing.
inline json::value get(const json::value& v, std::string_view ptr) {
  boost::system::error_code ec;
  const json::value* at = v.find_pointer(ptr, ec);
  return at ? *at : json::value("<no " + std::string(ptr) + ">");
}

// A string value as it is, anything else as JSON text.
inline std::string text(const json::value& v) {
  return v.is_string() ? std::string(v.get_string()) : json::serialize(v);
}

// The error code of a reply, or 0 if it is not an error.
inline int code_of(const json::value& reply) {
  json::value c = get(reply, "/error/code");
  return c.is_int64() ? static_cast<int>(c.get_int64()) : 0;
}

// The error message of a reply, or "" if it is not an error.
inline std::string message_of(const json::value& reply) {
  json::value m = get(reply, "/error/message");
  return reply.as_object().contains("error") && m.is_string() ? std::string(m.get_string()) : "";
}

// A blocking client over the daemon's socket. call() speaks the protocol
// through proto/json_rpc; send() and line() move raw lines, for bad input.
struct client {
  int fd = -1;
  std::string buffered;
  std::int64_t next_id = 1;

  explicit client(const std::string& path) {
    fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::snprintf(a.sun_path, sizeof a.sun_path, "%s", path.c_str());
    REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  }
  ~client() { ::close(fd); }
  client(const client&) = delete;
  client& operator=(const client&) = delete;

  /// Writes `line` and a '\n' as they are.
  bool send(const std::string& line) { return send_all(line + "\n"); }
  /// The next line, or "<closed>".
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
  /// The next line as a JSON object (a reply or a notification).
  json::value next() {
    std::string l = line();
    INFO("line: " << l);
    boost::system::error_code ec;
    json::value v = json::parse(l, ec);
    REQUIRE_FALSE(ec);
    REQUIRE(v.is_object());
    return v;
  }
  /// Sends a request built by proto; returns its id (the reply comes later).
  std::int64_t request(std::string_view method, json::object params = {}) {
    std::int64_t id = next_id++;
    REQUIRE(send_all(proto::frame(proto::make_request(id, method, std::move(params)))));
    return id;
  }
  /// Sends a request and returns the next line, which must answer it.
  json::value call(std::string_view method, json::object params = {}) {
    std::int64_t id = request(method, std::move(params));
    json::value reply = next();
    INFO("reply: " << reply);
    REQUIRE(get(reply, "/id") == id);
    return reply;
  }
  /// Sends `raw` as a line and returns the next line, parsed.
  json::value call_line(const std::string& raw) {
    REQUIRE(send(raw));
    return next();
  }

 private:
  bool send_all(const std::string& s) {
    for (std::size_t off = 0; off < s.size();) {
      ssize_t n = ::send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
      if (n <= 0) return false;
      off += static_cast<std::size_t>(n);
    }
    return true;
  }
};

// The "pid" of a spawn reply.
inline std::string pid_of(const json::value& reply) {
  json::value pid = get(reply, "/result/pid");
  INFO("reply: " << reply);
  REQUIRE(pid.is_string());
  return std::string(pid.get_string());
}

// The workflow `name` in a `workflows` reply (an empty object if absent).
inline json::object workflow_in(const json::value& reply, std::string_view name) {
  json::value list = get(reply, "/result");
  if (list.is_array())
    for (const auto& w : list.get_array())
      if (w.is_object() && text(get(w, "/name")) == name) return w.get_object();
  return {};
}

// The supervisor pid of workflow `name` in a `workflows` reply, or "".
inline std::string supervisor_of(const json::value& reply, std::string_view name) {
  json::object w = workflow_in(reply, name);
  const json::value* s = w.if_contains("supervisor");
  return s && s->is_string() ? std::string(s->get_string()) : std::string();
}

struct cli_result {
  int code;
  std::string out, err;
};

// Runs `luad ARGS` against the daemon at `socket`.
inline cli_result luad_cli(const std::string& socket, const std::string& args) {
  temp_dir dir("luad_cli");
  std::string cmd = "LUAD_SOCKET='" + socket + "' '" + LUAD_BINARY + "' " + args + " >'" +
                    (dir / "out").string() + "' 2>'" + (dir / "err").string() + "'";
  int status = std::system(cmd.c_str());
  return cli_result{WIFEXITED(status) ? WEXITSTATUS(status) : -1, luad::test::slurp(dir / "out"),
                    luad::test::slurp(dir / "err")};
}

// Parses `text` (a line a client command printed); REQUIREs it to be JSON.
inline json::value parse(const std::string& text) {
  INFO("text: " << text);
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  REQUIRE_FALSE(ec);
  return v;
}

}  // namespace luad_test
