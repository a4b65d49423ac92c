// The daemon over its real Unix socket, replies parsed as JSON: methods, errors
// for bad input, the request size bound, many connections, a second daemon, a
// stale socket file, and the client commands (`luad submit --wait` as `luad run`).
#include "server/daemon.hpp"

#include <doctest/doctest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

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
  CHECK(c.call_line(R"({"jsonrpc":"2.0","id":1,"method":"ping"})") ==
        json::parse(R"({"jsonrpc":"2.0","id":1,"result":"pong"})"));
  CHECK(get(c.call("version"), "/result/version").is_string());
  json::value r = c.call("spawn", {{"script", "double.lua"}, {"args", {21}}, {"wait", true}});
  CHECK(get(r, "/result/reason") == "normal");
  CHECK(get(r, "/result/results") == json::array{42});
  CHECK(get(r, "/result/pid").is_string());
  r = c.call("spawn", {{"source", "return require('store').incr('n')"}, {"wait", true}});
  CHECK(get(r, "/result/results") == json::array{1});  // the default profile grants store:t
  std::string pid = pid_of(c.call("spawn", {{"source", "require('process').receive('never')"}}));
  CHECK(eventually([&] {  // until it has parked in receive
    r = c.call("info", {{"pid", pid}});
    return get(r, "/result/waiting_on") == "message";
  }));
  CHECK(text(get(r, "/result/pid")) == pid);
  // wait on the running process, then kill it from a second connection.
  std::int64_t waiting = c.request("wait", {{"pid", pid}});
  client k(d.socket);
  CHECK(get(k.call("kill", {{"pid", pid}, {"reason", "enough"}}), "/result") == true);
  r = c.next();
  CHECK(get(r, "/id") == waiting);
  CHECK(get(r, "/result/reason") == "killed");
  CHECK(get(r, "/result/message") == "enough");
  CHECK(get(r, "/result/kind").is_string());
}

TEST_CASE("daemon: bad requests get clear errors and the connection keeps working") {
  running_daemon d;
  client c(d.socket);
  json::value r = c.call_line("not json at all");
  CHECK(code_of(r) == -32700);
  CHECK(get(r, "/id").is_null());
  static const char garbage[] = "\x01\x02\xff\xfe garbage";
  CHECK(code_of(c.call_line(std::string(garbage, sizeof garbage - 1))) == -32700);
  CHECK(code_of(c.call_line("[1,2,3]")) == -32600);
  r = c.call_line(R"({"id":1})");
  CHECK(code_of(r) == -32600);
  CHECK(get(r, "/id") == 1);
  r = c.call_line(R"({"id":"f","method":"fly"})");
  CHECK(code_of(r) == -32601);
  CHECK(message_of(r) == "unknown method 'fly'");
  CHECK(get(r, "/id") == "f");
  CHECK(code_of(c.call_line(R"({"id":1,"method":"spawn","params":[1]})")) == -32602);
  r = c.call("spawn");
  CHECK(code_of(r) == -32602);
  CHECK(has(message_of(r), "exactly one of"));
  r = c.call("spawn", {{"script", 5}});
  CHECK(code_of(r) == -32602);
  CHECK(has(message_of(r), "must be a string"));
  r = c.call("spawn", {{"script", "../secret.lua"}});
  CHECK(code_of(r) == -32004);
  CHECK(has(message_of(r), "under the script roots"));
  // A name the file system refuses is the client's mistake, and its error
  // shows neither the daemon's folders nor the whole name (it said
  // "filesystem error: weakly_canonical: File name too long [<root>/...]").
  for (const std::string& name :
       {std::string(300, 'y') + ".lua", std::string(256, 'z') + "/x.lua"}) {
    r = c.call("spawn", {{"script", name}});
    CHECK(code_of(r) == -32602);
    CHECK(has(message_of(r), "name too long for the file system"));
    CHECK(message_of(r).rfind("script '" + name.substr(0, 20), 0) == 0);
    CHECK(!has(message_of(r), d.dir.string()));
    CHECK(message_of(r).size() < 400);
  }
  r = c.call("spawn", {{"source", "x"}, {"profile", "admin"}});
  CHECK(code_of(r) == -32004);
  CHECK(has(message_of(r), "no profile named 'admin'"));
  CHECK(code_of(c.call("info", {{"pid", "nope"}})) == -32602);
  r = c.call("info", {{"pid", "0.999999"}});
  CHECK(code_of(r) == -32004);
  CHECK(has(message_of(r), "no process"));
  CHECK(get(c.call("ping"), "/result") == "pong");  // still fine
}

TEST_CASE("daemon: a line over the size limit is refused and only that connection closes") {
  running_daemon d;
  client big(d.socket);
  big.send(std::string(100000, 'x'));  // limit is 4096 bytes in this config
  json::value r = big.next();
  CHECK(code_of(r) == -32600);
  CHECK(message_of(r) == "request line longer than 4096 bytes");
  CHECK(big.line() == "<closed>");
  client other(d.socket);
  CHECK(get(other.call("ping"), "/result") == "pong");
}

TEST_CASE("daemon: many connections at once, and clients that vanish mid-request") {
  running_daemon d;
  {
    client gone(d.socket);
    gone.request("spawn", {{"source", "require('time').sleep(0.05) return 1"}, {"wait", true}});
  }  // disconnects before its answer
  std::vector<std::unique_ptr<client>> clients;
  for (int i = 0; i < 200; ++i) clients.push_back(std::make_unique<client>(d.socket));
  for (int i = 0; i < 200; ++i)
    clients[i]->request("spawn", {{"script", "double.lua"}, {"args", {i}}, {"wait", true}});
  int ok = 0;
  for (int i = 0; i < 200; ++i)
    ok += get(clients[i]->next(), "/result/results") == json::array{2 * i};
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
  temp_dir stale_dir("luad_stale");
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
      CHECK(get(c.call("ping"), "/result") == "pong");
    }
    third.request_stop();
    serving.join();
    CHECK(code == 0);
  }
  CHECK_FALSE(fs::exists(stale));  // removed on the way out
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
  auto bar = got.find('|');
  REQUIRE(bar != std::string::npos);
  json::value refused = parse(got.substr(0, bar));
  CHECK(code_of(refused) == -32001);
  CHECK(message_of(refused) == "uid 65534 may not use this daemon");
  CHECK(get(refused, "/id").is_null());
  CHECK(got.substr(bar) == "|closed");
  client me(d.socket);  // the daemon goes on serving everyone else
  CHECK(get(me.call("ping"), "/result") == "pong");
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
  json::value failed = parse(r.err);
  CHECK(get(failed, "/reason") == "error");
  CHECK(has(text(get(failed, "/message")), "boom"));
  r = luad_cli(d.socket, "submit " + slow.string());
  REQUIRE(r.code == 0);
  std::string pid = r.out.substr(0, r.out.find('\n'));
  CHECK(pid.find('.') != std::string::npos);
  r = luad_cli(d.socket, "ps");
  CHECK(has(r.out, "PID"));
  CHECK(has(r.out, pid));
  CHECK(has(r.out, "slow.lua"));
  r = luad_cli(d.socket, "info --json " + pid);
  CHECK(get(parse(r.out), "/script") == "slow.lua");
  r = luad_cli(d.socket, "kill " + pid);
  CHECK(r.code == 0);
  // The kill lands at the process's next instruction or wait: soon, not at once.
  CHECK(eventually([&] {
    r = luad_cli(d.socket, "info " + pid);
    return r.code == 1;
  }));
  CHECK(has(r.err, "no process"));
  r = luad_cli(d.socket, "stats");
  CHECK(has(r.out, "processes.spawned: "));
  CHECK(has(r.out, "processes.exits.killed: 1"));
  CHECK(has(r.out, "scheduler.commands.clock.sleep: 1"));
  // Figures as people read them: uptime in seconds to three decimals at most.
  CHECK_FALSE(has(r.out, "E1\n"));
  CHECK_FALSE(has(r.out, "E0\n"));
  auto at = r.out.find("uptime: ");
  REQUIRE(at != std::string::npos);
  std::string uptime = r.out.substr(at + 8, r.out.find('\n', at) - at - 8);
  INFO(uptime);
  CHECK(uptime.find_first_not_of("0123456789.") == std::string::npos);
  CHECK(uptime.size() - std::min(uptime.size(), uptime.find('.') + 1) <= 3);
  r = luad_cli((d.dir / "nope.sock").string(), "ping");
  CHECK(r.code == 5);
  CHECK(has(r.err, "cannot reach the daemon"));
}

TEST_CASE("daemon: luad submit --wait prints what luad run prints") {
  running_daemon d;
  fs::path values =
      d.tmp.write("values.lua", "return 0.5, 2.0, 42, 'x', {b = 1, a = {1, 2.5}}, true\n");
  auto ran = luad_cli(d.socket, "run " + values.string());
  auto submitted = luad_cli(d.socket, "submit --wait " + values.string());
  CHECK(ran.code == 0);
  CHECK(submitted.code == 0);
  CHECK(ran.out == "0.5\n2.0\n42\n\"x\"\n{\"a\":[1,2.5],\"b\":1}\ntrue\n");
  CHECK(submitted.out == ran.out);  // not Boost's "5E-1", keys sorted
  // A failure: the exit on stderr, with every field the daemon sent.
  fs::path bad = d.tmp.write(
      "bad.lua", "error({kind = 'unavailable', message = 'db down', retryable = true})\n");
  ran = luad_cli(d.socket, "run " + bad.string());
  submitted = luad_cli(d.socket, "submit --wait " + bad.string());
  CHECK(ran.code == 1);
  CHECK(submitted.code == 1);
  json::value run_exit = parse(ran.err), submit_exit = parse(submitted.err);
  client c(d.socket);
  json::value reply = c.call("wait", {{"pid", get(submit_exit, "/pid")}});
  CHECK(get(reply, "/result") == submit_exit);  // nothing dropped, nothing added
  for (const auto& [key, v] : submit_exit.as_object()) {
    INFO("key: " << key);
    CHECK(run_exit.as_object().contains(key));  // the shape `luad run` prints
    if (key != "pid" && key != "traceback") CHECK(run_exit.at(key) == v);
  }
  CHECK(get(submit_exit, "/reason") == "error");
  CHECK(get(submit_exit, "/kind") == "unavailable");
  CHECK(get(submit_exit, "/message") == "db down");
}

TEST_CASE("daemon: boot workflows start under their own supervisor, with their permissions") {
  std::string extra =
      "[[profile]]\nname = \"reader\"\npermissions = [\"store:wf\"]\n"
      "[[workflow]]\nname = \"marker\"\nscript = \"scripts/marker.lua\"\nargs = [\"hello\"]\n"
      "permissions = [\"store:wf\"]\n"
      "[[workflow]]\nname = \"later\"\nscript = \"scripts/marker.lua\"\nstart = \"manual\"\n";
  // The script must exist before the daemon starts, so no running_daemon here.
  temp_dir dir("luad_wf");
  dir.write("scripts/marker.lua",
            "local word = ...\nassert(require('store').set('mark', word))\n"
            "require('process').receive('never')\n");
  std::string text = "[server]\nsocket = \"luad.sock\"\ngrace_period = 0.5\n" + extra;
  luad::server::daemon dm(luad::server::parse_config(text, (dir / "luad.toml").string()));
  dm.start();
  int code = -1;
  std::thread serving([&] { code = dm.run(); });
  {
    client c((dir / "luad.sock").string());
    // The workflow ran with store:wf and got its args.
    CHECK(eventually([&] {
      json::value r = c.call("spawn", {{"source", "return require('store').get('mark')"},
                                       {"profile", "reader"},
                                       {"wait", true}});
      return get(r, "/result/results") == json::array{"hello"};
    }));
    json::value r = c.call("workflows");
    json::object marker = workflow_in(r, "marker");
    CHECK(marker["state"] == "running");
    CHECK(marker["supervisor"].is_string());
    CHECK(workflow_in(r, "later")["state"] == "not started");
    CHECK_FALSE(workflow_in(r, "later").contains("supervisor"));
  }
  dm.request_stop();
  serving.join();
  CHECK(code == 0);
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
  json::value reply;
  CHECK(eventually([&] {  // until it has registered its name
    reply = c.call(
        "send", {{"to", "inbox"}, {"topic", "job"}, {"payload", {{"n", 7}, {"list", {"a", "b"}}}}});
    return get(reply, "/result") == true;
  }));
  r = luad_cli(d.socket, "cancel " + pid + " 'time is up'");
  CHECK(r.code == 0);
  reply = c.call("wait", {{"pid", pid}});
  CHECK(get(reply, "/result/results") == json::parse(R"([7,"b","time is up"])"));
  reply = c.call("send", {{"to", "nobody"}, {"topic", "x"}});
  CHECK(code_of(reply) == -32004);
  CHECK(message_of(reply) == "no process or name 'nobody'");
  CHECK(code_of(c.call("send", {{"to", pid}, {"topic", ""}})) == -32004);  // it has ended
  r = luad_cli(d.socket, "send " + pid + " x '{bad json'");
  CHECK(r.code == 2);
  CHECK(has(r.err, "not JSON"));
}

TEST_CASE("daemon: workflows start, stop and restart by name") {
  temp_dir dir("luad_wfc");
  dir.write("scripts/idle.lua", "require('process').receive('never')\n");
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
  json::value first = parse(luad_cli(sock, "workflows --json").out);
  r = luad_cli(sock, "workflows restart idle");
  CHECK(has(r.out, "running"));
  json::value second = parse(luad_cli(sock, "workflows --json").out);
  CHECK(get(first, "/0/name") == "idle");
  CHECK(get(first, "/0/supervisor").is_string());
  CHECK(get(second, "/0/supervisor").is_string());
  CHECK(get(first, "/0/supervisor") != get(second, "/0/supervisor"));  // a new supervisor
  r = luad_cli(sock, "workflows stop idle");
  CHECK(has(r.out, "stopped"));
  r = luad_cli(sock, "workflows stop nope");
  CHECK(has(r.err, "no workflow named 'nope'"));
  dm.request_stop();
  serving.join();
}
