// The daemon's event and operations features over the real socket: log and
// exit subscriptions (and `luad logs`), reload on request and on SIGHUP, JSON
// log lines from a real `luad serve`, client-chosen limits, and the load
// cases: a 1 GB line, 1,000 connections at once, a client that never reads.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>
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
  std::string pid = pid_of(c.call(
      "spawn", {{"source",
                 "local log = require('log') log.info('one') require('process').receive('go') "
                 "log.warn('two', {k = 1}) log.debug('hidden') return 5"}}));
  // Once it waits in receive, 'one' has been logged.
  REQUIRE(eventually([&] {
    return get(c.call("info", {{"pid", pid}}), "/result/waiting_on") == "message";
  }));
  client follower(d.socket);
  json::value sub = follower.call("subscribe", {{"pid", pid}});
  CHECK(text(get(sub, "/result/pid")) == pid);
  CHECK(get(sub, "/result/subscribed") == true);
  CHECK(get(sub, "/result/backlog/0/message") == "one");
  CHECK(get(sub, "/result/backlog/0/level") == "info");
  CHECK(text(get(sub, "/result/backlog/0/pid")) == pid);
  CHECK(get(sub, "/result/backlog").as_array().size() == 1);
  CHECK(get(c.call("send", {{"to", pid}, {"topic", "go"}}), "/result") == true);
  json::value line = follower.next();
  CHECK(get(line, "/method") == "log");
  CHECK_FALSE(line.as_object().contains("id"));  // a notification
  CHECK(get(line, "/params/message") == "two");
  CHECK(get(line, "/params/level") == "warn");
  CHECK(get(line, "/params/fields") == json::object{{"k", 1}});
  line = follower.next();  // debug is below the daemon's level: not sent
  CHECK(get(line, "/method") == "exit");
  CHECK(text(get(line, "/params/pid")) == pid);
  CHECK(get(line, "/params/reason") == "normal");
  CHECK(get(line, "/params/results") == json::array{5});
  // After the exit: the backlog and the exit at once, no subscription.
  json::value r = follower.call("subscribe", {{"pid", pid}});
  CHECK(get(r, "/result/exit/reason") == "normal");
  CHECK(get(r, "/result/backlog/1/message") == "two");
  CHECK_FALSE(get(r, "/result").as_object().contains("subscribed"));
  r = follower.call("subscribe", {{"pid", "0.987654"}});
  CHECK(code_of(r) == -32004);
  CHECK(has(message_of(r), "no process 0.987654"));
  CHECK(code_of(follower.call("subscribe", {{"pid", pid}, {"level", "loud"}})) == -32602);
  CHECK(get(follower.call("unsubscribe", {{"pid", pid}}), "/result") == false);
}

TEST_CASE("daemon: once unsubscribe has answered true, no line of that process follows") {
  // A worker takes the followers of a line, then posts it to the io thread;
  // an unsubscribe answered in between must still stop it (CI once saw a
  // line after the reply). A process logging without pause makes that
  // window likely on every round.
  running_daemon d;
  client c(d.socket);
  std::string pid = pid_of(c.call(
      "spawn", {{"source", "local log = require('log') while true do log.info('tick') end"}}));
  for (int round = 0; round < 50; ++round) {
    json::value sub = c.call("subscribe", {{"pid", pid}, {"backlog", false}});
    REQUIRE(get(sub, "/result/subscribed") == true);
    json::value line = c.next();  // the subscription delivers
    REQUIRE(get(line, "/method") == "log");
    std::int64_t un = c.request("unsubscribe", {{"pid", pid}});
    while (!(line = c.next()).as_object().contains("id")) CHECK(get(line, "/method") == "log");
    REQUIRE(get(line, "/id") == un);
    CHECK(get(line, "/result") == true);
    // The next line must be the ping's reply, not a late log line.
    json::value pong = c.call("ping");
    CHECK(get(pong, "/result") == "pong");
  }
  c.call("kill", {{"pid", pid}});
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
  std::istringstream printed(r.out);
  std::string first, second, last;
  std::getline(printed, first);
  std::getline(printed, second);
  std::getline(printed, last);
  CHECK(get(parse(first), "/message") == "first line");
  CHECK(get(parse(second), "/fields/n") == 2);
  CHECK(get(parse(last), "/exit/reason") == "error");
  CHECK(has(text(get(parse(last), "/exit/message")), "gave up"));
  r = luad_cli(d.socket, "logs 0.99999");
  CHECK(r.code == 1);
  CHECK(has(r.err, "no process"));
}

TEST_CASE("daemon: luad kill --owner ends every process of one owner; a pid and --owner clash") {
  running_daemon d;
  fs::path script = d.dir / "sleeper.lua";
  std::ofstream(script) << "require('time').sleep(60)\n";
  std::vector<std::string> pids;
  for (int i = 0; i < 3; ++i) {
    auto r = luad_cli(d.socket, "submit " + script.string());
    REQUIRE(r.code == 0);
    pids.push_back(r.out.substr(0, r.out.find('\n')));
  }
  std::string owner = "uid:" + std::to_string(::getuid());
  auto r = luad_cli(d.socket, "kill --owner " + owner);
  CHECK(r.code == 0);
  CHECK(has(r.out, "killed 3 processes of " + owner));
  client c(d.socket);
  for (const auto& pid : pids)
    CHECK(get(c.call("wait", {{"pid", pid}}), "/result/reason") == "killed");
  r = luad_cli(d.socket, "kill 0.1 --owner " + owner);
  CHECK(r.code != 0);
  CHECK(has(r.err, "excludes"));
  r = luad_cli(d.socket, "kill");
  CHECK(r.code != 0);
  CHECK(has(r.err, "give a pid or --owner"));
}

TEST_CASE("daemon: workflow processes log with their workflow, and ps filters by it") {
  running_daemon d("[[workflow]]\nname = \"talker\"\nscript = \"scripts/talker.lua\"\n",
                   {{"scripts/talker.lua",
                     "require('log').info('talking')\nrequire('process').receive('never')\n"}});
  json::object talker;  // the talker process in `ps --json`
  REQUIRE(eventually([&] {
    json::value listed = parse(luad_cli(d.socket, "ps --json --workflow talker").out);
    for (const auto& p : listed.as_array())
      if (has(text(get(p, "/script")), "talker.lua")) talker = p.as_object();
    return !talker.empty();
  }));
  CHECK(talker["owner"] == "workflow:talker");
  CHECK_FALSE(has(luad_cli(d.socket, "ps --workflow nobody").out, "talker.lua"));
  client c(d.socket);
  json::value sub = c.call("subscribe", {{"pid", talker["pid"]}});
  CHECK(get(sub, "/result/backlog/0/message") == "talking");
  CHECK(get(sub, "/result/backlog/0/workflow") == "talker");
}

TEST_CASE("daemon: reload adds, changes and removes workflows; a bad file changes nothing") {
  std::string worker = "require('process').receive('never')\n";
  running_daemon d(
      "[[workflow]]\nname = \"a\"\nscript = \"scripts/w.lua\"\n"
      "[[workflow]]\nname = \"b\"\nscript = \"scripts/w.lua\"\n",
      {{"scripts/w.lua", worker}});
  client c(d.socket);
  json::value before;
  REQUIRE(eventually([&] {
    before = c.call("workflows");
    return workflow_in(before, "a")["state"] == "running" &&
           workflow_in(before, "b")["state"] == "running";
  }));
  d.write_config(
      "[[workflow]]\nname = \"a\"\nscript = \"scripts/w.lua\"\nargs = [\"new\"]\n"
      "[[workflow]]\nname = \"c\"\nscript = \"scripts/w.lua\"\n"
      "[[workflow]]\nname = \"m\"\nscript = \"scripts/w.lua\"\nstart = \"manual\"\n");
  json::value r = c.call("reload");
  CHECK(get(r, "/result/added") == json::array{"c", "m"});
  CHECK(get(r, "/result/removed") == json::array{"b"});
  CHECK(get(r, "/result/changed") == json::array{"a"});
  CHECK(get(r, "/result/restart_needed") == false);
  json::value after = c.call("workflows");
  CHECK(workflow_in(after, "b").empty());
  CHECK(workflow_in(after, "c")["state"] == "running");
  CHECK(workflow_in(after, "m")["state"] == "not started");
  CHECK(supervisor_of(before, "a") != supervisor_of(after, "a"));  // restarted with its new args
  CHECK_FALSE(supervisor_of(after, "a").empty());
  // A broken file: an error naming it, and every workflow keeps running.
  d.write_config("[[workflow]]\nname = 5\n");
  r = c.call("reload");
  CHECK(code_of(r) == -32000);
  CHECK(has(message_of(r), "config not reloaded"));
  CHECK(has(message_of(r), "luad.toml"));
  auto reloaded = luad_cli(d.socket, "reload");
  CHECK(reloaded.code == 1);
  CHECK(reloaded.err == "luad reload: " + message_of(r) + "\n");
  json::value still = c.call("workflows");
  CHECK(supervisor_of(still, "a") == supervisor_of(after, "a"));
  CHECK(workflow_in(still, "c")["state"] == "running");
}

TEST_CASE("daemon: a client may tighten the limits of what it submits, not loosen them") {
  running_daemon d;
  client c(d.socket);
  auto spawn = [&](const char* source, json::object limits, bool wait) {
    return c.call("spawn", {{"source", source}, {"limits", std::move(limits)}, {"wait", wait}});
  };
  json::value r = spawn("return #string.rep('x', 4000000)", {{"memory", 1000000}}, true);
  CHECK(get(r, "/result/reason") == "limit");
  CHECK(get(r, "/result/kind") == "limit");
  r = spawn("while true do end", {{"instructions", 100000}}, true);
  CHECK(get(r, "/result/reason") == "limit");
  r = spawn("return 1", {{"memory", 999999999999}}, false);
  CHECK(code_of(r) == -32001);
  CHECK(has(message_of(r), "may not exceed"));
  r = spawn("return 1", {{"turn", 1}}, false);
  CHECK(code_of(r) == -32602);
  CHECK(has(message_of(r), "unknown limit 'turn'"));
  r = spawn("while true do end", {{"cpu", 0.05}}, true);  // cpu: seconds, may be lowered
  CHECK(get(r, "/result/reason") == "limit");
  CHECK(get(r, "/result/message") == "cpu limit exceeded");
  CHECK(code_of(spawn("return 1", {{"memory", -1}}, false)) == -32602);
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
  json::value refused = big.next();
  CHECK(code_of(refused) == -32600);
  CHECK(message_of(refused) == "request line longer than 4096 bytes");
  client other(d.socket);
  CHECK(get(other.call("ping"), "/result") == "pong");
}

TEST_CASE("daemon: 1,000 connections at once are all served; the next one is told why not") {
  rlimit fds{};
  ::getrlimit(RLIMIT_NOFILE, &fds);
  if (fds.rlim_cur < 4096) {  // the daemon and the clients share this process
    fds.rlim_cur = std::min<rlim_t>(fds.rlim_max, 4096);
    ::setrlimit(RLIMIT_NOFILE, &fds);
  }
  REQUIRE(fds.rlim_cur >= 2100);
  // (one uid here: its share is all of them)
  running_daemon d("", {}, "max_connections = 1000\nconnections_per_uid = 1000\n");
  std::vector<std::unique_ptr<client>> clients;
  for (int i = 0; i < 1000; ++i) clients.push_back(std::make_unique<client>(d.socket));
  for (int i = 0; i < 1000; ++i)
    clients[i]->request("spawn", {{"script", "double.lua"}, {"args", {i}}, {"wait", true}});
  int ok = 0;
  for (int i = 0; i < 1000; ++i)
    ok += get(clients[i]->next(), "/result/results") == json::array{2 * i};
  CHECK(ok == 1000);
  client one_more(d.socket);
  json::value refused = one_more.next();
  CHECK(code_of(refused) == -32000);
  CHECK(message_of(refused) == "too many connections (max_connections = 1000)");
  clients.pop_back();  // a place frees up
  CHECK(eventually([&] {
    client again(d.socket);
    again.request("ping");
    return get(again.next(), "/result") == "pong";
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
  CHECK(get(other.call("ping"), "/result") == "pong");
  // Reading now gets every answer the daemon took a request for (in any
  // order: replies to waiting requests are matched by id).
  REQUIRE(::fcntl(slow.fd, F_SETFL, ::fcntl(slow.fd, F_GETFL) & ~O_NONBLOCK) == 0);
  int answered = 0;
  std::vector<bool> seen(static_cast<std::size_t>(queued), false);
  const json::value x64k = json::array{std::string(65536, 'x')};
  for (int i = 0; i < queued; ++i) {
    json::value r = slow.next();
    json::value id = get(r, "/id");
    if (!id.is_int64() || id.get_int64() < 0 || id.get_int64() >= queued) continue;
    auto at = static_cast<std::size_t>(id.get_int64());
    answered += !seen[at] && get(r, "/result/results") == x64k;
    seen[at] = true;
  }
  CHECK(answered == queued);
}

TEST_CASE("daemon: the real luad serve logs JSON lines and reloads on SIGHUP") {
  temp_dir dir("luad_serve");
  dir.write("scripts/idle.lua", "require('process').receive('never')\n");
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
}
