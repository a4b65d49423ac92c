// The daemon's event and operations features over the real socket: log and
// exit subscriptions (and `luad logs`), reload on request and on SIGHUP, JSON
// log lines from a real `luad serve`, client-chosen limits, and the load
// cases: a 1 GB line, 1,000 connections at once, a client that never reads.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <boost/json.hpp>

#include <chrono>
#include <cstring>
#include <sstream>

#include "tests/server/daemon_support.hpp"

using namespace luad_test;
namespace json = boost::json;

TEST_CASE("daemon: subscribe returns the backlog, then log lines, then the exit") {
  running_daemon d;
  client c(d.socket);
  std::string r = c.call(
      R"J({"id":1,"method":"spawn","params":{"source":"local log = require('log') log.info('one') require('process').receive('go') log.warn('two', {k = 1}) log.debug('hidden') return 5"}})J");
  std::string pid = pid_of(r);
  // Once it waits in receive, 'one' has been logged.
  REQUIRE(eventually([&] {
    return has(c.call(R"({"id":2,"method":"info","params":{"pid":")" + pid + R"("}})"),
               R"("waiting_on":"message")");
  }));
  client follower(d.socket);
  std::string sub =
      follower.call(R"({"id":2,"method":"subscribe","params":{"pid":")" + pid + R"("}})");
  CHECK(has(sub, R"("message":"one")"));
  CHECK(has(sub, R"("subscribed":true)"));
  CHECK(has(sub, R"("level":"info")"));
  CHECK(has(c.call(R"({"id":4,"method":"send","params":{"to":")" + pid + R"(","topic":"go"}})"),
            R"("result":true)"));
  std::string line = follower.line();
  CHECK(has(line, R"("method":"log")"));
  CHECK(has(line, R"("message":"two")"));
  CHECK(has(line, R"("fields":{"k":1})"));
  line = follower.line();  // debug is below the daemon's level: not sent
  CHECK(has(line, R"("method":"exit")"));
  CHECK(has(line, R"("results":[5])"));
  // After the exit: the backlog and the exit at once, no subscription.
  r = follower.call(R"({"id":5,"method":"subscribe","params":{"pid":")" + pid + R"("}})");
  CHECK(has(r, R"("exit":{)"));
  CHECK(has(r, R"("message":"two")"));
  CHECK_FALSE(has(r, "subscribed"));
  CHECK(has(follower.call(R"({"id":6,"method":"subscribe","params":{"pid":"0.987654"}})"),
            "no process 0.987654"));
  CHECK(has(follower.call(R"({"id":7,"method":"subscribe","params":{"pid":")" + pid +
                          R"(","level":"loud"}})"),
            R"("code":-32602)"));
  CHECK(has(follower.call(R"({"id":8,"method":"unsubscribe","params":{"pid":")" + pid + R"("}})"),
            R"("result":false)"));
}

TEST_CASE("daemon: luad logs follows a process until it exits; --no-follow prints the past") {
  running_daemon d;
  fs::path script = d.dir / "chatty.lua";
  std::ofstream(script) << "local log = require('log')\nlog.info('first line')\n"
                           "require('time').sleep(0.3)\nlog.error('second line', {n = 2})\n"
                           "error('gave up')\n";
  auto r = luad_cli(d.socket, "submit " + script.string());
  REQUIRE(r.code == 0);
  std::string pid = r.out.substr(0, r.out.find('\n'));
  r = luad_cli(d.socket, "logs " + pid);
  CHECK(r.code == 0);
  CHECK(has(r.out, "info"));
  CHECK(has(r.out, "first line"));
  CHECK(has(r.out, "second line {\"n\":2}"));
  CHECK(has(r.out, "-- " + pid + " exited: error"));
  CHECK(has(r.out, "gave up"));
  r = luad_cli(d.socket, "logs --no-follow --json " + pid);
  CHECK(has(r.out, R"("message":"first line")"));
  CHECK(has(r.out, R"("exit":{)"));
  r = luad_cli(d.socket, "logs 0.99999");
  CHECK(r.code == 1);
  CHECK(has(r.err, "no process"));
}

TEST_CASE("daemon: workflow processes log with their workflow, and ps filters by it") {
  running_daemon d("[[workflow]]\nname = \"talker\"\nscript = \"scripts/talker.lua\"\n",
                   {{"scripts/talker.lua",
                     "require('log').info('talking')\nrequire('process').receive('never')\n"}});
  std::string listed;
  REQUIRE(eventually([&] {
    listed = luad_cli(d.socket, "ps --json --workflow talker").out;
    return has(listed, "talker.lua");
  }));
  CHECK(has(listed, R"("owner":"workflow:talker")"));
  CHECK_FALSE(has(luad_cli(d.socket, "ps --workflow nobody").out, "talker.lua"));
  auto at = listed.find(R"("pid":")", listed.find("talker.lua") - 120);
  std::string pid = listed.substr(at + 7, listed.find('"', at + 7) - at - 7);
  client c(d.socket);
  std::string sub = c.call(R"({"id":1,"method":"subscribe","params":{"pid":")" + pid + R"("}})");
  CHECK(has(sub, R"("message":"talking")"));
  CHECK(has(sub, R"("workflow":"talker")"));
}

TEST_CASE("daemon: reload adds, changes and removes workflows; a bad file changes nothing") {
  std::string worker = "require('process').receive('never')\n";
  running_daemon d(
      "[[workflow]]\nname = \"a\"\nscript = \"scripts/w.lua\"\n"
      "[[workflow]]\nname = \"b\"\nscript = \"scripts/w.lua\"\n",
      {{"scripts/w.lua", worker}});
  client c(d.socket);
  std::string before;
  REQUIRE(eventually([&] {
    before = c.call(R"({"id":1,"method":"workflows"})");
    return has(before, R"("name":"b","script")") && !has(before, "not started");
  }));
  d.write_config(
      "[[workflow]]\nname = \"a\"\nscript = \"scripts/w.lua\"\nargs = [\"new\"]\n"
      "[[workflow]]\nname = \"c\"\nscript = \"scripts/w.lua\"\n"
      "[[workflow]]\nname = \"m\"\nscript = \"scripts/w.lua\"\nstart = \"manual\"\n");
  std::string r = c.call(R"({"id":2,"method":"reload"})");
  CHECK(has(r, R"("added":["c","m"])"));
  CHECK(has(r, R"("removed":["b"])"));
  CHECK(has(r, R"("changed":["a"])"));
  CHECK(has(r, R"("restart_needed":false)"));
  std::string after = c.call(R"({"id":3,"method":"workflows"})");
  CHECK_FALSE(has(after, R"("name":"b")"));
  CHECK(has(after, R"("name":"c")"));
  CHECK(has(after, R"("name":"m","script")"));
  auto sup = [](const std::string& list, const std::string& name) {
    auto at = list.find(R"("name":")" + name + "\"");
    auto s = list.find(R"("supervisor":")", at);
    return s == std::string::npos ? std::string() : list.substr(s, 30);
  };
  CHECK(sup(before, "a") != sup(after, "a"));  // restarted with its new args
  CHECK(has(after.substr(after.find(R"("name":"m")")), R"("state":"not started")"));
  // A broken file: an error naming it, and every workflow keeps running.
  d.write_config("[[workflow]]\nname = 5\n");
  auto reloaded = luad_cli(d.socket, "reload");
  CHECK(reloaded.code == 1);
  CHECK(has(reloaded.err, "config not reloaded"));
  CHECK(has(reloaded.err, "luad.toml"));
  std::string still = c.call(R"({"id":4,"method":"workflows"})");
  CHECK(sup(still, "a") == sup(after, "a"));
  CHECK(has(still, R"("name":"c")"));
}

TEST_CASE("daemon: a client may tighten the limits of what it submits, not loosen them") {
  running_daemon d;
  client c(d.socket);
  std::string r = c.call(
      R"J({"id":1,"method":"spawn","params":{"source":"return #string.rep('x', 4000000)","limits":{"memory":1000000},"wait":true}})J");
  CHECK(has(r, R"("reason":"limit")"));
  r = c.call(
      R"J({"id":2,"method":"spawn","params":{"source":"while true do end","limits":{"instructions":100000},"wait":true}})J");
  CHECK(has(r, R"("reason":"limit")"));
  r = c.call(
      R"J({"id":3,"method":"spawn","params":{"source":"return 1","limits":{"memory":999999999999}}})J");
  CHECK(has(r, "may not exceed"));
  r = c.call(R"J({"id":4,"method":"spawn","params":{"source":"return 1","limits":{"cpu":1}}})J");
  CHECK(has(r, "unknown limit 'cpu'"));
  r = c.call(
      R"J({"id":5,"method":"spawn","params":{"source":"return 1","limits":{"memory":-1}}})J");
  CHECK(has(r, R"("code":-32602)"));
  fs::path big = d.dir / "big.lua";
  std::ofstream(big) << "return #string.rep('x', 4000000)\n";
  auto cli = luad_cli(d.socket, "submit --wait --memory 1MiB " + big.string());
  CHECK(cli.code == 3);
}

TEST_CASE("daemon: a 1 GB line is cut off at the request limit; the daemon serves on") {
  running_daemon d;
  client big(d.socket);
  std::string chunk(1 << 20, 'x');
  std::size_t sent = 0;
  // Stream up to 1 GB without a newline; the daemon reads at most its limit
  // (4096 bytes here), answers with an error and hangs up, so sending fails
  // long before the gigabyte is through.
  while (sent < (std::size_t{1} << 30)) {
    ssize_t n = ::send(big.fd, chunk.data(), chunk.size(), MSG_NOSIGNAL);
    if (n <= 0) break;
    sent += static_cast<std::size_t>(n);
  }
  CHECK(sent < (std::size_t{64} << 20));
  CHECK(has(big.line(), "longer than 4096 bytes"));
  client other(d.socket);
  CHECK(has(other.call(R"({"id":1,"method":"ping"})"), "pong"));
}

TEST_CASE("daemon: 1,000 connections at once are all served; the next one is told why not") {
  rlimit fds{};
  ::getrlimit(RLIMIT_NOFILE, &fds);
  if (fds.rlim_cur < 4096) {  // the daemon and the clients share this process
    fds.rlim_cur = std::min<rlim_t>(fds.rlim_max, 4096);
    ::setrlimit(RLIMIT_NOFILE, &fds);
  }
  REQUIRE(fds.rlim_cur >= 2100);
  running_daemon d("", {}, "max_connections = 1000\n");
  std::vector<std::unique_ptr<client>> clients;
  for (int i = 0; i < 1000; ++i) clients.push_back(std::make_unique<client>(d.socket));
  for (int i = 0; i < 1000; ++i)
    REQUIRE(clients[i]->send(R"({"id":)" + std::to_string(i) +
                             R"(,"method":"spawn","params":{"script":"double.lua","args":[)" +
                             std::to_string(i) + R"(],"wait":true}})"));
  int ok = 0;
  for (int i = 0; i < 1000; ++i)
    ok += has(clients[i]->line(), R"("results":[)" + std::to_string(2 * i) + "]");
  CHECK(ok == 1000);
  client one_more(d.socket);
  CHECK(has(one_more.line(), "too many connections"));
  clients.pop_back();  // a place frees up
  CHECK(eventually([&] {
    client again(d.socket);
    return has(again.call(R"({"id":1,"method":"ping"})"), "pong");
  }));
}

TEST_CASE("daemon: a client that never reads its replies is held back; others are served") {
  running_daemon d;
  client slow(d.socket);
  REQUIRE(::fcntl(slow.fd, F_SETFL, ::fcntl(slow.fd, F_GETFL) | O_NONBLOCK) == 0);
  // Each request asks for a 64 KiB answer and carries 3.5 KiB of padding, so the
  // requests alone would not fit in the socket buffers either.
  std::string pad(3500, 'p');  // (the test daemon's request limit is 4096)
  auto request = [&](int i) {
    return R"J({"id":)J" + std::to_string(i) +
           R"J(,"method":"spawn","params":{"source":"return string.rep('x', 65536)","wait":true},"pad":")J" +
           pad + "\"}\n";
  };
  constexpr int total = 1000;
  int queued = 0;
  std::string pending = request(0);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  bool blocked = false;
  while (queued < total && std::chrono::steady_clock::now() < deadline) {
    ssize_t n = ::send(slow.fd, pending.data(), pending.size(), MSG_NOSIGNAL);
    int err = errno;
    if (n < 0 && (err == EAGAIN || err == EWOULDBLOCK)) {
      blocked = true;  // the daemon stopped reading: its replies are not being taken
      pollfd p{slow.fd, POLLOUT, 0};
      if (::poll(&p, 1, 200) == 0) break;  // still stuck after 200 ms: held back for good
      continue;
    }
    INFO("send failed: errno " << err << " after " << queued << " requests");
    REQUIRE(n > 0);
    pending.erase(0, static_cast<std::size_t>(n));
    if (pending.empty() && ++queued < total) pending = request(queued);
  }
  CHECK(blocked);
  CHECK(queued < total);  // 1,000 × 64 KiB were never buffered for it
  // At most 64 waiting requests and 4 MiB of replies per connection, plus
  // what the kernel buffers hold.
  CHECK(queued < 300);
  MESSAGE("requests taken before the daemon held back: " << queued);
  client other(d.socket);
  CHECK(has(other.call(R"({"id":1,"method":"ping"})"), "pong"));
  // Reading now gets every answer the daemon took a request for.
  REQUIRE(::fcntl(slow.fd, F_SETFL, ::fcntl(slow.fd, F_GETFL) & ~O_NONBLOCK) == 0);
  int answered = 0;
  for (int i = 0; i < queued; ++i) answered += has(slow.line(), std::string(65536, 'x'));
  CHECK(answered == queued);
}

TEST_CASE("daemon: the real luad serve logs JSON lines and reloads on SIGHUP") {
  static std::atomic<int> n{0};
  fs::path dir = fs::temp_directory_path() /
                 ("luad_serve_" + std::to_string(::getpid()) + "_" + std::to_string(n++));
  fs::remove_all(dir);
  fs::create_directories(dir / "scripts");
  std::ofstream(dir / "scripts" / "idle.lua") << "require('process').receive('never')\n";
  std::string base =
      "[server]\nsocket = \"luad.sock\"\nlog_format = \"json\"\ngrace_period = 0.5\n"
      "[storage]\ndata_dir = \"data\"\n";
  std::ofstream(dir / "luad.toml") << base;
  pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    int err = ::open((dir / "stderr").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(err, 2);
    ::execl(LUAD_BINARY, "luad", "serve", "--config", (dir / "luad.toml").c_str(), nullptr);
    ::_exit(127);
  }
  std::string sock = (dir / "luad.sock").string();
  REQUIRE(eventually([&] { return luad_cli(sock, "ping").code == 0; }));
  fs::path hello = dir / "hello.lua";
  std::ofstream(hello) << "require('log').info('hello \"there\"', {k = 1})\nreturn 1\n";
  CHECK(luad_cli(sock, "submit --wait " + hello.string()).code == 0);
  std::ofstream(dir / "luad.toml")
      << base << "[[workflow]]\nname = \"late\"\nscript = \"scripts/idle.lua\"\n";
  ::kill(child, SIGHUP);
  CHECK(eventually([&] {
    auto r = luad_cli(sock, "workflows");
    return has(r.out, "late") && has(r.out, "running");
  }));
  ::kill(child, SIGTERM);
  int status = 0;
  ::waitpid(child, &status, 0);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  std::ifstream err(dir / "stderr");
  int lines = 0, bad = 0;
  bool hello_line = false, reload_line = false;
  for (std::string line; std::getline(err, line);) {
    if (line.empty()) continue;
    ++lines;
    boost::system::error_code ec;
    json::value v = json::parse(line, ec);
    if (ec || !v.is_object() || !v.get_object().contains("time") ||
        !v.get_object().contains("level")) {
      ++bad;
      MESSAGE("not a JSON log line: " << line);
      continue;
    }
    const json::object& o = v.get_object();
    std::string msg(o.at("msg").get_string());
    if (msg == "hello \"there\"" && o.contains("pid") &&
        o.at("fields").at("k").to_number<int>() == 1)
      hello_line = true;
    if (msg.find("reloaded") != std::string::npos) reload_line = true;
  }
  CHECK(lines >= 3);
  CHECK(bad == 0);
  CHECK(hello_line);
  CHECK(reload_line);
  fs::remove_all(dir);
}
