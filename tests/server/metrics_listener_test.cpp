// The metrics listener on its own io thread, with small limits: GET /metrics
// and keep-alive, 404 and 405, an oversized head (431), garbage (400), the
// connection cap (one closing after its answer, else the longest waiting,
// makes room; 503 when none waits), and
// the per-request deadline that ends idle and slow-loris connections.
#include "server/metrics_listener.hpp"

#include <doctest/doctest.h>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include <atomic>
#include <future>
#include <memory>
#include <thread>
#include <vector>

#include "tests/server/metrics_support.hpp"

// Cases with wall-clock bounds run alone, not beside other tests on the same
// cores (ctest RUN_SERIAL: cmake/doctest_add_tests.cmake).
TEST_SUITE_BEGIN("serial");

using namespace luad_metrics_test;
using luad::test::eventually;
using luad::test::has;
using namespace std::chrono_literals;

namespace {

// A listener on 127.0.0.1 (a free port) served by a thread of its own.
struct listener_fixture {
  boost::asio::io_context io;
  std::atomic<int> scrapes{0};
  luad::server::metrics_listener listener;
  std::thread th;

  /// Serves "luad_up N\n" (N counting the scrapes), or `body` when given.
  explicit listener_fixture(luad::server::metrics_listener::limits l, std::string body = "")
      : listener(
            io,
            [this, body] {
              ++scrapes;
              return body.empty() ? "luad_up " + std::to_string(scrapes) + "\n" : body;
            },
            l) {
    listener.start("127.0.0.1", 0);
    th = std::thread([this] { io.run(); });
  }
  ~listener_fixture() {
    boost::asio::post(io, [this] { listener.stop(); });
    th.join();  // io.run() ends once every connection is gone
  }
  std::uint16_t port() const { return listener.port(); }
  /// The listener's open connections, asked on its io thread.
  std::size_t connections() {
    std::promise<std::size_t> n;
    boost::asio::post(io, [&] { n.set_value(listener.connections()); });
    return n.get_future().get();
  }
};

luad::server::metrics_listener::limits small() { return {2, 1024, 500ms}; }

}  // namespace

TEST_CASE("metrics listener: GET /metrics answers the exposition, on a kept-alive connection too") {
  listener_fixture f(small());
  REQUIRE(f.port() != 0);
  http_answer a = http_get(f.port(), "/metrics");
  CHECK(a.status == 200);
  CHECK(a.header("Content-Type") == "text/plain; version=0.0.4; charset=utf-8");
  CHECK(a.body == "luad_up 1\n");
  CHECK(http_get(f.port(), "/metrics?name[]=x").status == 200);  // Prometheus' params
  // Two requests on one connection (the second asks to close).
  tcp_client c(f.port());
  c.send(
      "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\nGET /metrics HTTP/1.1\r\nHost: x\r\n"
      "Connection: close\r\n\r\n");
  std::string both = c.read_all();
  CHECK_FALSE(c.timed_out());
  CHECK(has(both, "luad_up 3\n"));
  CHECK(has(both, "luad_up 4\n"));
  // HTTP/1.0 is answered in 1.0, and the connection ends.
  tcp_client old(f.port());
  old.send("GET /metrics HTTP/1.0\r\n\r\n");
  std::string raw = old.read_all();
  CHECK_FALSE(old.timed_out());
  CHECK(raw.rfind("HTTP/1.0 200 OK\r\n", 0) == 0);
  CHECK(has(raw, "luad_up 5\n"));
}

TEST_CASE("metrics listener: another path is 404, another method 405, garbage 400") {
  listener_fixture f(small());
  http_answer a = http_get(f.port(), "/");
  CHECK(a.status == 404);
  CHECK(has(a.body, "/metrics"));
  CHECK(http_get(f.port(), "/metrics/x").status == 404);
  for (const char* method : {"POST", "HEAD", "PUT", "DELETE"}) {
    tcp_client c(f.port());
    c.send(std::string(method) + " /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello");
    a = parse_answer(c.read_all());
    CHECK(a.status == 405);
    CHECK(a.header("Allow") == "GET");
    CHECK(a.header("Connection") == "close");  // its body is never read: the connection ends
  }
  tcp_client g(f.port());
  g.send("\x16\x03\x01 not http at all\r\n\r\n");
  CHECK(parse_answer(g.read_all()).status == 400);
  CHECK(f.scrapes == 0);
  CHECK(http_get(f.port(), "/metrics").status == 200);
}

TEST_CASE(
    "metrics listener: a request head past the limit is refused with 431 and the "
    "connection closed") {
  listener_fixture f(small());
  tcp_client c(f.port());
  c.send("GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(4000, 'a') + "\r\n\r\n");
  std::string raw = c.read_all();
  CHECK_FALSE(c.timed_out());  // closed by the server, not left open
  CHECK(parse_answer(raw).status == 431);
  // A head that never ends is cut off at the limit too.
  tcp_client endless(f.port());
  std::string line = "X-More: " + std::string(100, 'b') + "\r\n";
  endless.send("GET /metrics HTTP/1.1\r\n");
  for (int i = 0; i < 20; ++i) endless.send(line);
  CHECK(parse_answer(endless.read_all()).status == 431);
  CHECK(f.scrapes == 0);
}

TEST_CASE(
    "metrics listener: at the cap, the connection waiting longest makes room; silent and "
    "slow clients are closed at the deadline") {
  listener_fixture f(small());  // 2 connections, 500 ms a request
  tcp_client silent(f.port());
  REQUIRE(eventually([&] { return f.connections() == 1; }));
  tcp_client slow(f.port());
  REQUIRE(eventually([&] { return f.connections() == 2; }));
  // A scraper still gets through: the silent one, waiting longest, makes room.
  auto start = std::chrono::steady_clock::now();
  CHECK(http_get(f.port(), "/metrics").status == 200);
  CHECK(silent.read_all().empty());
  CHECK_FALSE(silent.timed_out());
  CHECK(std::chrono::steady_clock::now() - start < 400ms);  // at once, not at the deadline
  // The slow-loris one keeps sending a byte at a time: its request still has
  // only the deadline.
  std::string head = "GET /metrics HTTP/1.1\r\nHost: x\r\n";
  std::thread drip([&] {
    for (char ch : head) {
      if (!slow.send(std::string(1, ch))) return;
      std::this_thread::sleep_for(50ms);
    }
  });
  CHECK(slow.read_all().empty());
  CHECK_FALSE(slow.timed_out());
  drip.join();
  auto took = std::chrono::steady_clock::now() - start;
  CHECK(took >= 400ms);
  CHECK(took < 5s);
  CHECK(f.connections() == 0);
}

TEST_CASE(
    "metrics listener: at the cap, a connection closing after its answer makes room before "
    "one waiting for its request") {
  listener_fixture f(small());  // 2 connections
  tcp_client waiter(f.port());  // waits for its request first: the longest waiter
  REQUIRE(eventually([&] { return f.connections() == 1; }));
  // Then one is answered and lingers (its client neither sends nor closes).
  tcp_client answered(f.port());
  answered.send("GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  REQUIRE(eventually([&] { return f.scrapes == 1; }));
  REQUIRE(f.connections() == 2);
  // A scraper at the cap takes the lingering one's place, not the waiter's.
  CHECK(http_get(f.port(), "/metrics").status == 200);
  CHECK(parse_answer(answered.read_all()).status == 200);  // it had its answer, then the close
  CHECK_FALSE(answered.timed_out());
  waiter.send("GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  CHECK(parse_answer(waiter.read_all()).status == 200);
  CHECK(f.scrapes == 3);
}

TEST_CASE("metrics listener: when every connection is busy answering, one more gets 503") {
  // An answer far larger than the socket buffers: clients that do not read
  // keep their connections busy writing, until the deadline ends them. It is
  // long here: under TSan making and writing two 16 MiB answers once took
  // longer than small()'s 500 ms, and the cap was then no longer reached.
  luad::server::metrics_listener::limits l = small();
  l.timeout = 30s;
  listener_fixture f(l, std::string(16 << 20, 'x'));
  tcp_client a(f.port()), b(f.port());
  a.send("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  b.send("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  REQUIRE(eventually([&] { return f.scrapes == 2; }));
  http_answer busy = http_get(f.port(), "/metrics");
  CHECK(busy.status == 503);
  CHECK(busy.body.substr(0, 64) == "too many connections\n");  // (not 16 MiB in the report)
  CHECK(f.connections() == 2);
}

TEST_SUITE_END();
