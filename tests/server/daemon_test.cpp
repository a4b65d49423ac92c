// The daemon over its real Unix socket: methods, errors for bad input, the
// request size bound, many connections, a second daemon, a stale socket file.
#include "server/daemon.hpp"

#include <doctest/doctest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "server/config.hpp"
#include "tests/server/daemon_support.hpp"

using namespace luad_test;

namespace fs = std::filesystem;

TEST_CASE("daemon: ping, version, spawn with wait, info, kill and wait over the socket") {
  running_daemon d;
  client c(d.socket);
  CHECK(c.call(R"({"jsonrpc":"2.0","id":1,"method":"ping"})") ==
        R"({"jsonrpc":"2.0","id":1,"result":"pong"})");
  CHECK(has(c.call(R"({"jsonrpc":"2.0","id":2,"method":"version"})"), R"("version":")"));
  std::string r = c.call(
      R"({"jsonrpc":"2.0","id":3,"method":"spawn","params":{"script":"double.lua","args":[21],"wait":true}})");
  CHECK(has(r, R"("id":3)"));
  CHECK(has(r, R"("reason":"normal","results":[42])"));
  r = c.call(
      R"J({"jsonrpc":"2.0","id":"s","method":"spawn","params":{"source":"return require('store').incr('n')","wait":true}})J");
  CHECK(has(r, R"("results":[1])"));  // the default profile grants store:t
  r = c.call(
      R"J({"jsonrpc":"2.0","id":4,"method":"spawn","params":{"source":"require('process').receive('never')"}})J");
  auto at = r.find(R"("pid":")");
  REQUIRE(at != std::string::npos);
  std::string pid = r.substr(at + 7, r.find('"', at + 7) - at - 7);
  for (int i = 0; i < 500; ++i) {  // until it has parked in receive
    r = c.call(R"({"jsonrpc":"2.0","id":5,"method":"info","params":{"pid":")" + pid + R"("}})");
    if (has(r, "waiting_on")) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  CHECK(has(r, R"("waiting_on":"message")"));
  // wait on the running process, then kill it from a second connection.
  REQUIRE(c.send(R"({"jsonrpc":"2.0","id":6,"method":"wait","params":{"pid":")" + pid + R"("}})"));
  client k(d.socket);
  CHECK(has(k.call(R"({"jsonrpc":"2.0","id":7,"method":"kill","params":{"pid":")" + pid +
                   R"(","reason":"enough"}})"),
            R"("result":true)"));
  r = c.line();
  CHECK(has(r, R"("id":6)"));
  CHECK(has(r, R"("reason":"killed")"));
  CHECK(has(r, R"("message":"enough")"));
}

TEST_CASE("daemon: bad requests get clear errors and the connection keeps working") {
  running_daemon d;
  client c(d.socket);
  CHECK(has(c.call("not json at all"), R"("code":-32700)"));
  static const char garbage[] = "\x01\x02\xff\xfe garbage";
  CHECK(has(c.call(std::string(garbage, sizeof garbage - 1)), R"("code":-32700)"));
  CHECK(has(c.call("[1,2,3]"), R"("code":-32600)"));
  CHECK(has(c.call(R"({"id":1})"), R"("code":-32600)"));
  CHECK(has(c.call(R"({"id":1,"method":"fly"})"), "unknown method 'fly'"));
  CHECK(has(c.call(R"({"id":1,"method":"spawn","params":[1]})"), R"("code":-32602)"));
  CHECK(has(c.call(R"({"id":1,"method":"spawn","params":{}})"), "exactly one of"));
  CHECK(has(c.call(R"({"id":1,"method":"spawn","params":{"script":5}})"), "must be a string"));
  CHECK(has(c.call(R"({"id":1,"method":"spawn","params":{"script":"../secret.lua"}})"),
            "under the script roots"));
  CHECK(has(c.call(R"({"id":1,"method":"spawn","params":{"source":"x","profile":"admin"}})"),
            "no profile named 'admin'"));
  CHECK(has(c.call(R"({"id":1,"method":"info","params":{"pid":"nope"}})"), R"("code":-32602)"));
  CHECK(has(c.call(R"({"id":1,"method":"info","params":{"pid":"0.999999"}})"), "no process"));
  CHECK(has(c.call(R"({"id":9,"method":"ping"})"), R"("result":"pong")"));  // still fine
}

TEST_CASE("daemon: a line over the size limit is refused and only that connection closes") {
  running_daemon d;
  client big(d.socket);
  big.send(std::string(100000, 'x'));  // limit is 4096 bytes in this config
  std::string r = big.line();
  CHECK(has(r, "longer than 4096 bytes"));
  CHECK(big.line() == "<closed>");
  client other(d.socket);
  CHECK(has(other.call(R"({"id":1,"method":"ping"})"), "pong"));
}

TEST_CASE("daemon: many connections at once, and clients that vanish mid-request") {
  running_daemon d;
  {
    client gone(d.socket);
    gone.send(
        R"J({"id":1,"method":"spawn","params":{"source":"require('time').sleep(0.05) return 1","wait":true}})J");
  }  // disconnects before its answer
  std::vector<std::unique_ptr<client>> clients;
  for (int i = 0; i < 200; ++i) clients.push_back(std::make_unique<client>(d.socket));
  for (int i = 0; i < 200; ++i)
    REQUIRE(clients[i]->send(R"({"id":)" + std::to_string(i) +
                             R"(,"method":"spawn","params":{"script":"double.lua","args":[)" +
                             std::to_string(i) + R"(],"wait":true}})"));
  int ok = 0;
  for (int i = 0; i < 200; ++i)
    ok += has(clients[i]->line(), R"("results":[)" + std::to_string(2 * i) + "]");
  CHECK(ok == 200);
}

TEST_CASE("daemon: a second daemon on the same socket refuses; a stale socket file is reused") {
  running_daemon d;
  auto cfg = luad::server::parse_config("[server]\nsocket = \"luad.sock\"\n",
                                        (d.dir / "other.toml").string());
  luad::server::daemon second(cfg);
  try {
    second.start();
    FAIL("a second daemon started on a live socket");
  } catch (const std::exception& e) {
    CHECK(has(e.what(), "another luad is already serving on"));
  }
  // A socket file nobody listens on (left by a crash) does not stop a start.
  fs::path stale_dir = fs::temp_directory_path() / ("luad_stale_" + std::to_string(::getpid()));
  fs::create_directories(stale_dir);
  std::string stale = (stale_dir / "s.sock").string();
  {
    int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::snprintf(a.sun_path, sizeof a.sun_path, "%s", stale.c_str());
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    ::close(fd);  // the file stays, nobody listens
  }
  auto cfg2 = luad::server::parse_config("[server]\nsocket = \"s.sock\"\n",
                                         (stale_dir / "c.toml").string());
  {
    luad::server::daemon third(cfg2);
    third.start();
    int code = -1;
    std::thread serving([&] { code = third.run(); });
    {
      client c(stale);
      CHECK(has(c.call(R"({"id":1,"method":"ping"})"), "pong"));
    }
    third.request_stop();
    serving.join();
    CHECK(code == 0);
  }
  CHECK_FALSE(fs::exists(stale));  // removed on the way out
  fs::remove_all(stale_dir);
}

TEST_CASE("daemon: a peer whose uid is not allowed gets one error line and is disconnected") {
  if (::geteuid() != 0) {
    MESSAGE("needs root to connect as another uid; skipped this check");
    return;
  }
  running_daemon d("");
  ::chmod(d.socket.c_str(), 0666);  // let the other uid reach the socket at all
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    ::close(fds[0]);
    std::string got = "setuid failed";
    if (::setgid(65534) == 0 && ::setuid(65534) == 0) {
      int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
      sockaddr_un a{};
      a.sun_family = AF_UNIX;
      std::snprintf(a.sun_path, sizeof a.sun_path, "%s", d.socket.c_str());
      got = "connect failed";
      if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
        char buf[512];
        ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        got = n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : "nothing";
        n = ::recv(fd, buf, sizeof buf, 0);  // then the daemon hangs up
        got += n == 0 ? "|closed" : "|open";
      }
    }
    (void)!::write(fds[1], got.data(), got.size());
    ::_exit(0);
  }
  ::close(fds[1]);
  std::string got;
  char buf[512];
  for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) > 0;)
    got.append(buf, static_cast<std::size_t>(n));
  ::close(fds[0]);
  int status = 0;
  ::waitpid(child, &status, 0);
  CHECK(has(got, "uid 65534 may not use this daemon"));
  CHECK(has(got, "|closed"));
  client me(d.socket);  // the daemon goes on serving everyone else
  CHECK(has(me.call(R"({"id":1,"method":"ping"})"), "pong"));
}

TEST_CASE("daemon: the client commands submit, ps, info, kill, stats and ping") {
  running_daemon d;
  fs::path hi = d.dir / "hi.lua";
  std::ofstream(hi) << "return (...) .. '!'\n";
  fs::path slow = d.dir / "slow.lua";
  std::ofstream(slow) << "require('time').sleep(60)\n";
  fs::path bad = d.dir / "bad.lua";
  std::ofstream(bad) << "error('boom')\n";

  auto r = luad_cli(d.socket, "ping");
  CHECK(r.code == 0);
  CHECK(r.out == "pong\n");
  r = luad_cli(d.socket, "submit --wait " + hi.string() + " hey");
  CHECK(r.code == 0);
  CHECK(r.out == "\"hey!\"\n");
  r = luad_cli(d.socket, "submit --wait " + bad.string());
  CHECK(r.code == 1);
  CHECK(has(r.err, "boom"));
  r = luad_cli(d.socket, "submit " + slow.string());
  REQUIRE(r.code == 0);
  std::string pid = r.out.substr(0, r.out.find('\n'));
  CHECK(pid.find('.') != std::string::npos);
  r = luad_cli(d.socket, "ps");
  CHECK(has(r.out, "PID"));
  CHECK(has(r.out, pid));
  CHECK(has(r.out, "slow.lua"));
  r = luad_cli(d.socket, "info --json " + pid);
  CHECK(has(r.out, "\"script\":\"slow.lua\""));
  r = luad_cli(d.socket, "kill " + pid);
  CHECK(r.code == 0);
  r = luad_cli(d.socket, "info " + pid);
  CHECK(r.code == 1);
  CHECK(has(r.err, "no process"));
  r = luad_cli(d.socket, "stats");
  CHECK(has(r.out, "processes.spawned: "));
  CHECK(has(r.out, "processes.exits.killed: 1"));
  CHECK(has(r.out, "scheduler.commands.clock.sleep: 1"));
  r = luad_cli((d.dir / "nope.sock").string(), "ping");
  CHECK(r.code == 5);
  CHECK(has(r.err, "cannot reach the daemon"));
}

TEST_CASE("daemon: boot workflows start under their own supervisor, with their permissions") {
  std::string extra =
      "[[profile]]\nname = \"reader\"\npermissions = [\"store:wf\"]\n"
      "[[workflow]]\nname = \"marker\"\nscript = \"scripts/marker.lua\"\nargs = [\"hello\"]\n"
      "permissions = [\"store:wf\"]\n"
      "[[workflow]]\nname = \"later\"\nscript = \"scripts/marker.lua\"\nstart = \"manual\"\n";
  // The script must exist before the daemon starts, so no running_daemon here.
  static std::atomic<int> n{100};
  fs::path dir = fs::temp_directory_path() /
                 ("luad_wf_" + std::to_string(::getpid()) + "_" + std::to_string(n++));
  fs::remove_all(dir);
  fs::create_directories(dir / "scripts");
  std::ofstream(dir / "scripts" / "marker.lua")
      << "local word = ...\nassert(require('store').set('mark', word))\n"
         "require('process').receive('never')\n";
  std::string text = "[server]\nsocket = \"luad.sock\"\ngrace_period = 0.5\n" + extra;
  luad::server::daemon dm(luad::server::parse_config(text, (dir / "luad.toml").string()));
  dm.start();
  int code = -1;
  std::thread serving([&] { code = dm.run(); });
  {
    client c((dir / "luad.sock").string());
    std::string r;
    bool marked = false;
    for (int i = 0; i < 500 && !marked; ++i) {
      r = c.call(
          R"J({"id":1,"method":"spawn","params":{"source":"return require('store').get('mark')","profile":"reader","wait":true}})J");
      marked = has(r, R"("results":["hello"])");
      if (!marked) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    CHECK(marked);  // the workflow ran with store:wf and got its args
    r = c.call(R"({"id":2,"method":"workflows"})");
    CHECK(has(r, R"("name":"marker")"));
    CHECK(has(r, R"("state":"running")"));
    CHECK(has(r, R"("supervisor":")"));
    CHECK(has(r, R"("name":"later")"));
    CHECK(has(r, R"("state":"not started")"));
  }
  dm.request_stop();
  serving.join();
  CHECK(code == 0);
  fs::remove_all(dir);
}

TEST_CASE("daemon: send and cancel reach a process by pid or by name") {
  running_daemon d;
  fs::path echo = d.dir / "mailbox.lua";
  std::ofstream(echo) << R"(
local process = require("process")
process.register("inbox")
local m = process.receive("job")
local c = process.receive("CANCEL")
return m.payload.n, m.payload.list[2], c.payload.reason
)";
  auto r = luad_cli(d.socket, "submit " + echo.string());
  REQUIRE(r.code == 0);
  std::string pid = r.out.substr(0, r.out.find('\n'));
  client c(d.socket);
  std::string reply;
  for (int i = 0; i < 500; ++i) {  // until it has registered its name
    reply = c.call(
        R"({"id":1,"method":"send","params":{"to":"inbox","topic":"job","payload":{"n":7,"list":["a","b"]}}})");
    if (has(reply, R"("result":true)")) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  CHECK(has(reply, R"("result":true)"));
  r = luad_cli(d.socket, "cancel " + pid + " 'time is up'");
  CHECK(r.code == 0);
  reply = c.call(R"({"id":2,"method":"wait","params":{"pid":")" + pid + R"("}})");
  CHECK(has(reply, R"("results":[7,"b","time is up"])"));
  CHECK(has(c.call(R"({"id":3,"method":"send","params":{"to":"nobody","topic":"x"}})"),
            "no process or name 'nobody'"));
  CHECK(has(c.call(R"({"id":4,"method":"send","params":{"to":")" + pid + R"(","topic":""}})"),
            R"("code":-32004)"));  // it has ended by now
  r = luad_cli(d.socket, "send " + pid + " x '{bad json'");
  CHECK(r.code == 2);
  CHECK(has(r.err, "not JSON"));
}

TEST_CASE("daemon: workflows start, stop and restart by name") {
  static std::atomic<int> n{200};
  fs::path dir = fs::temp_directory_path() /
                 ("luad_wfc_" + std::to_string(::getpid()) + "_" + std::to_string(n++));
  fs::remove_all(dir);
  fs::create_directories(dir / "scripts");
  std::ofstream(dir / "scripts" / "idle.lua") << "require('process').receive('never')\n";
  std::string text =
      "[server]\nsocket = \"luad.sock\"\ngrace_period = 0.5\n"
      "[[workflow]]\nname = \"idle\"\nscript = \"scripts/idle.lua\"\nstart = \"manual\"\n";
  luad::server::daemon dm(luad::server::parse_config(text, (dir / "luad.toml").string()));
  dm.start();
  std::thread serving([&] { dm.run(); });
  std::string sock = (dir / "luad.sock").string();
  auto r = luad_cli(sock, "workflows");
  CHECK(has(r.out, "not started"));
  r = luad_cli(sock, "workflows start idle");
  CHECK(r.code == 0);
  CHECK(has(r.out, "running"));
  r = luad_cli(sock, "workflows start idle");
  CHECK(r.code == 1);
  CHECK(has(r.err, "already running"));
  std::string first = luad_cli(sock, "workflows --json").out;
  r = luad_cli(sock, "workflows restart idle");
  CHECK(has(r.out, "running"));
  std::string second = luad_cli(sock, "workflows --json").out;
  CHECK(first != second);  // a new supervisor pid
  r = luad_cli(sock, "workflows stop idle");
  CHECK(has(r.out, "stopped"));
  r = luad_cli(sock, "workflows stop nope");
  CHECK(has(r.err, "no workflow named 'nope'"));
  dm.request_stop();
  serving.join();
  fs::remove_all(dir);
}
