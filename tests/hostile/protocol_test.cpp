// Hostile clients and scripts against the protocol, over a real socket: what
// a process returns, raises or logs never breaks the JSON of a reply (NaN,
// infinities, invalid UTF-8, NUL); idle and slowloris connections are closed;
// one uid cannot take every connection slot nor lock root out; a store
// namespace cannot grow past its quota.
#include <doctest/doctest.h>
#include <grp.h>
#include <sys/stat.h>

#include <chrono>
#include <cstring>

#include "tests/server/daemon_support.hpp"

// Cases with wall-clock bounds run alone, not beside other tests on the same
// cores (ctest RUN_SERIAL: cmake/doctest_add_tests.cmake).
TEST_SUITE_BEGIN("serial");

using namespace luad_test;

namespace {

using steady = std::chrono::steady_clock;

// Spawns `source` with wait; the reply (parsed strictly by client::next).
json::value run_source(client& c, const std::string& source, const std::string& profile = "") {
  json::object params{{"source", source}, {"wait", true}};
  if (!profile.empty()) params["profile"] = profile;
  return c.call("spawn", std::move(params));
}

}  // namespace

TEST_CASE("hostile: NaN, infinities and invalid UTF-8 in results keep the reply strict JSON") {
  running_daemon d;
  client c(d.socket);
  json::value r = run_source(c, R"(
    return 0/0, 1/0, -1/0, "\xff\xfe", "a\0b", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80",
           {deep = {{"\xff", 0/0}}, ["\xfe"] = 1}, "ünïcode")");
  INFO(r);
  CHECK(get(r, "/result/reason") == "normal");
  json::value expected = json::parse(R"([null, null, null, {"$bytes":"//4="}, "a\u0000b",
      {"$bytes":"wK8="}, {"$bytes":"7aCA"}, {"$bytes":"9JCAgA=="},
      {"deep":[[{"$bytes":"/w=="}, null]], "$bytes:/g==":1}, "ünïcode"])");
  CHECK(get(r, "/result/results") == expected);
  // A number past the double range (an id of 1e999) is refused as not JSON,
  // never echoed as Infinity (tests/hostile/socket_test.cpp has the rest).
  CHECK(code_of(c.call_line(R"({"jsonrpc":"2.0","id":1e999,"method":"ping"})")) == -32700);
  // A request with invalid UTF-8 is refused as not JSON; the connection goes on.
  CHECK(code_of(c.call_line("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"p\xffng\"}")) == -32700);
  CHECK(get(c.call("ping"), "/result") == "pong");
}

TEST_CASE("hostile: invalid UTF-8 in error messages and log lines is repaired text") {
  running_daemon d;
  client c(d.socket);
  json::value r = run_source(c, R"(error("bad \xff\xc0 bytes"))");
  CHECK(get(r, "/result/reason") == "error");
  CHECK(text(get(r, "/result/message")).find("bad \xEF\xBF\xBD\xEF\xBF\xBD bytes") !=
        std::string::npos);
  // Log lines: a bad message, bad fields, and a message cut at 16 KiB in the
  // middle of a character.
  r = run_source(c, R"(
    local log = require("log")
    log.info("raw \xff\xfe")
    log.warn("fields", {k = "\xff"})
    log.info("a" .. ("é"):rep(10000))
    return 1)");
  std::string pid = pid_of(r);
  json::value sub = c.call("subscribe", {{"pid", pid}});
  json::value backlog = get(sub, "/result/backlog");
  REQUIRE(backlog.is_array());
  REQUIRE(backlog.get_array().size() == 3);
  CHECK(get(backlog, "/0/message") == "raw \xEF\xBF\xBD\xEF\xBF\xBD");
  CHECK(text(get(backlog, "/2/message")).find("\xEF\xBF\xBD...(truncated)") != std::string::npos);
  // The client command prints them and exits 0 (it exited 5 on non-JSON).
  cli_result logs = luad_cli(d.socket, "logs " + pid + " --no-follow");
  CHECK(logs.code == 0);
  CHECK(logs.out.find("raw \xEF\xBF\xBD") != std::string::npos);
}

TEST_CASE("hostile: luad submit --wait prints results that are not UTF-8, and exits 0") {
  running_daemon d;
  d.write("bytes.lua", "return '\\xff\\xfe', 0/0, 'ok'\n");
  d.write("raise.lua", "error('\\xff')\n");
  cli_result out = luad_cli(d.socket, "submit --wait " + (d.dir / "bytes.lua").string());
  INFO(out.err);
  CHECK(out.code == 0);
  CHECK(out.out == "{\"$bytes\":\"//4=\"}\nnull\n\"ok\"\n");
  cli_result err = luad_cli(d.socket, "submit --wait " + (d.dir / "raise.lua").string());
  CHECK(err.code == 1);
  json::value exit = parse(err.err.substr(0, err.err.find('\n')));
  CHECK(get(exit, "/reason") == "error");
}

TEST_CASE("hostile: an idle connection is closed; waits and subscriptions are not idle") {
  running_daemon d("", {}, "idle_timeout = 0.3\n");
  auto t0 = steady::now();
  client idle(d.socket);
  client waiting(d.socket);
  client following(d.socket);
  std::string slow = pid_of(waiting.call("spawn", {{"source", "require('time').sleep(0.7)"}}));
  std::int64_t wait_id = waiting.request("wait", {{"pid", slow}});
  CHECK(get(following.call("subscribe", {{"pid", slow}}), "/result/subscribed") == true);
  json::value bye = idle.next();  // the only line an idle client gets
  auto waited = steady::now() - t0;
  CHECK(message_of(bye).find("idle") != std::string::npos);
  CHECK(idle.line() == "<closed>");
  CHECK(waited >= std::chrono::milliseconds(200));
  CHECK(waited < std::chrono::milliseconds(1500));
  // The waiting and the subscribed connections outlive the idle timeout.
  json::value done = waiting.next();
  CHECK(get(done, "/id") == wait_id);
  CHECK(get(done, "/result/reason") == "normal");
  json::value exit = following.next();
  CHECK(get(exit, "/method") == "exit");
  // Once the wait is answered and the subscription ended, they idle out too.
  CHECK(message_of(waiting.next()).find("idle") != std::string::npos);
  CHECK(message_of(following.next()).find("idle") != std::string::npos);
}

TEST_CASE("hostile: a slowloris request line is cut off after request_timeout") {
  running_daemon d("", {}, "request_timeout = 0.3\n");
  client slow(d.socket);
  client other(d.socket);
  auto t0 = steady::now();
  // One byte every 50 ms: never a whole line.
  std::string partial = R"({"jsonrpc":"2.0","id":1,"method":"ping")";
  for (char ch : partial) {
    if (::send(slow.fd, &ch, 1, MSG_NOSIGNAL) != 1) break;  // closed on us
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    if (steady::now() - t0 > std::chrono::milliseconds(800)) break;
  }
  json::value err = slow.next();
  CHECK(code_of(err) == -32600);
  CHECK(message_of(err).find("request_timeout") != std::string::npos);
  CHECK(slow.line() == "<closed>");
  CHECK(steady::now() - t0 < std::chrono::milliseconds(1500));
  CHECK(get(other.call("ping"), "/result") == "pong");  // the others were served all along
}

namespace {

// A daemon whose socket other uids may reach: allow_uids, mode 0666, a folder
// they can traverse. Few slots, so exhaustion is quick to reach.
struct shared_daemon {
  temp_dir tmp{"luad_slots"};
  std::string socket = (tmp.path() / "luad.sock").string();
  std::unique_ptr<luad::server::daemon> d;
  std::thread th;

  shared_daemon() {
    ::chmod(tmp.path().c_str(), 0755);
    tmp.write("luad.toml",
              "[server]\nsocket = \"luad.sock\"\nsocket_mode = \"0666\"\n"
              "allow_uids = [65534, 65533]\ngrace_period = 0.5\n"
              "[limits]\nmax_connections = 8\nconnections_per_uid = 4\n");
    d = std::make_unique<luad::server::daemon>(
        luad::server::load_config((tmp.path() / "luad.toml").string()));
    d->start();
    th = std::thread([this] { d->run(); });
  }
  ~shared_daemon() {
    d->request_stop();
    th.join();
  }
};

// In a forked child (async-signal-safe calls only): becomes `uid`, opens `n`
// connections one by one, pings each and reports one letter per connection
// on `report` (A accepted, U per-uid share, K operator reserve, M total, ?
// other), then holds them until `hold` is closed.
[[noreturn]] void connect_as(const char* path, uid_t uid, int n, int report, int hold) {
  // Only the two pipes: a copy of another child's `hold` would keep it alive.
  for (int fd = 3; fd < 4096; ++fd)
    if (fd != report && fd != hold) ::close(fd);
  if (::setgroups(0, nullptr) != 0 || ::setgid(uid) != 0 || ::setuid(uid) != 0) ::_exit(3);
  for (int i = 0; i < n; ++i) {
    int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, path, sizeof a.sun_path - 1);
    char letter = '?';
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
      timeval tv{2, 0};
      ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      const char ping[] = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}\n";
      ::send(fd, ping, sizeof ping - 1, MSG_NOSIGNAL);
      char buf[512] = {};
      std::size_t got = 0;
      while (got < sizeof buf - 1) {
        ssize_t k = ::recv(fd, buf + got, sizeof buf - 1 - got, 0);
        if (k <= 0) break;
        got += static_cast<std::size_t>(k);
        if (std::memchr(buf, '\n', got)) break;
      }
      letter = std::strstr(buf, "pong")                  ? 'A'
               : std::strstr(buf, "connections_per_uid") ? 'U'
               : std::strstr(buf, "kept for root")       ? 'K'
               : std::strstr(buf, "max_connections")     ? 'M'
                                                         : '?';
    }
    if (::write(report, &letter, 1) != 1) ::_exit(4);
  }
  char x;
  while (::read(hold, &x, 1) > 0) {
  }
  ::_exit(0);
}

struct child {
  pid_t pid = -1;
  int hold_w = -1;
  std::string letters;
};

child spawn_connector(const std::string& socket, uid_t uid, int n) {
  int report[2], hold[2];
  REQUIRE(::pipe(report) == 0);
  REQUIRE(::pipe(hold) == 0);
  child c;
  c.pid = ::fork();
  REQUIRE(c.pid >= 0);
  if (c.pid == 0) {
    ::close(report[0]);
    ::close(hold[1]);
    connect_as(socket.c_str(), uid, n, report[1], hold[0]);
  }
  ::close(report[1]);
  ::close(hold[0]);
  c.hold_w = hold[1];
  char buf[16];
  while (c.letters.size() < static_cast<std::size_t>(n)) {
    ssize_t k = ::read(report[0], buf, sizeof buf);
    if (k <= 0) break;
    c.letters.append(buf, static_cast<std::size_t>(k));
  }
  ::close(report[0]);
  return c;
}

// Whether a ping on `c` is answered (not refused).
bool pong(client& c) {
  json::value r = c.call_line(R"({"jsonrpc":"2.0","id":1,"method":"ping"})");
  return get(r, "/result") == "pong";
}

void release(child& c) {
  ::close(c.hold_w);
  int status = 0;
  ::waitpid(c.pid, &status, 0);
}

}  // namespace

TEST_CASE("hostile: one uid cannot take every connection slot, nor lock root out") {
  REQUIRE_MESSAGE(::geteuid() == 0, "this test forks children that become other uids");
  shared_daemon d;
  // uid 65534 gets its share (4 of 8) and no more.
  child a = spawn_connector(d.socket, 65534, 5);
  CHECK(a.letters == "AAAAU");
  // A second uid gets what is left for non-operators: 8 minus the reserve (1) minus 4.
  child b = spawn_connector(d.socket, 65533, 4);
  CHECK(b.letters == "AAAK");
  // Root still gets in, on the reserved slot, and can do its work.
  {
    client root(d.socket);
    CHECK(pong(root));
    client over(d.socket);  // all 8 taken now
    json::value refused = over.next();
    CHECK(code_of(refused) == -32000);
    CHECK(get(refused, "/error/kind") == "limit");
    CHECK(message_of(refused).find("max_connections") != std::string::npos);
    CHECK(over.line() == "<closed>");
  }
  release(a);
  release(b);
  // Root is subject to the per-uid share too (once the children's sockets are gone).
  std::vector<std::unique_ptr<client>> mine;
  CHECK(eventually([&] {
    mine.clear();
    for (int i = 0; i < 4; ++i) {
      mine.push_back(std::make_unique<client>(d.socket));
      if (!pong(*mine.back())) return false;
    }
    return true;
  }));
  client fifth(d.socket);
  json::value refused = fifth.next();
  CHECK(message_of(refused).find("connections_per_uid = 4") != std::string::npos);
}

TEST_CASE("hostile: a store flood stops at the namespace's quota; other namespaces go on") {
  running_daemon d(
      "[[profile]]\nname = \"small\"\npermissions = [\"store:flood\"]\nstore_bytes = \"1MiB\"\n");
  client c(d.socket);
  json::value r = run_source(c, R"(
    local store = require("store")
    local chunk = ("x"):rep(100 * 1024)
    local stored, err = 0, nil
    for i = 1, 30 do
      local ok, e = store.set("k" .. i, chunk)
      if not ok then err = e break end
      stored = stored + 1
    end
    return stored, err and err.kind, store.get("k" .. (stored + 1)) == nil)",
                             "small");
  INFO(r);
  CHECK(get(r, "/result/results") == json::parse("[10, \"limit\", true]"));
  // The default profile's namespace is not touched by the flood's quota.
  r = run_source(c, R"(return require("store").set("k", ("y"):rep(2 * 1024 * 1024)))");
  CHECK(get(r, "/result/results") == json::parse("[true]"));
}

TEST_SUITE_END();
