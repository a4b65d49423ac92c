// Attacks on the metrics port of a real `luad serve`: slow-loris clients that
// hold connections and reconnect whenever one is closed (they once locked a
// scraper out: every slot taken, each newcomer refused until the 10 s
// deadline), and clients flooding oversized request heads. A scraper must
// still be served, and the daemon's memory must not grow with the attack.
#include <doctest/doctest.h>

#include <atomic>
#include <memory>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "tests/hostile/daemon_process.hpp"
#include "tests/server/metrics_support.hpp"

// Cases with wall-clock bounds run alone, not beside other tests on the same
// cores (ctest RUN_SERIAL: cmake/doctest_add_tests.cmake).
TEST_SUITE_BEGIN("serial");

namespace {

using namespace luad_hostile;
using luad_metrics_test::http_answer;
using luad_metrics_test::http_get;
using luad_metrics_test::tcp_client;

// ASan keeps freed blocks in quarantine (capped below for the daemon) and
// maps shadow memory beside the heap: room for both on top of the bound.
constexpr std::size_t rss_bound_kib = 64 * 1024 + (asan_build ? 64 * 1024 : 0);

// A daemon with a metrics listener on a free port; `port` is read off its log.
struct metrics_daemon {
  std::unique_ptr<daemon_process> d;
  std::uint16_t port = 0;

  metrics_daemon() {
    // ASan's quarantine capped for the daemon, as the corpus does.
    if (asan_build) ::setenv("ASAN_OPTIONS", "detect_leaks=1:quarantine_size_mb=32", 1);
    d = std::make_unique<daemon_process>(
        "[server]\nsocket = \"luad.sock\"\nworkers = 2\ngrace_period = 0.5\n"
        "[storage]\ndata_dir = \"data\"\n[metrics]\nlisten = \"127.0.0.1:0\"\n"
        "[[profile]]\nname = \"default\"\npermissions = []\n");
    REQUIRE_MESSAGE(d->started(), d->log_tail());
    std::smatch m;
    std::string log = d->log_tail();
    REQUIRE_MESSAGE(std::regex_search(log, m, std::regex("http://127\\.0\\.0\\.1:(\\d+)/metrics")),
                    log);
    port = static_cast<std::uint16_t>(std::stoi(m[1]));
  }
  ~metrics_daemon() { CHECK_MESSAGE(d->stop(5s), "no clean stop: ", d->how_it_ended()); }

  void serves() {
    REQUIRE_MESSAGE(d->alive(), "the daemon died: ", d->how_it_ended(), "\n", d->log_tail());
    line_client c(d->socket());
    REQUIRE(c.connected());
    CHECK(c.call("ping", {}, 500ms).as_object()["result"] == "pong");
  }
};

// Scrapes every 100 ms while `attack` runs on `threads` threads; returns how
// many scrapes were not answered 200, and the slowest one.
struct scrape_record {
  int scrapes = 0, failed = 0;
  double slowest_ms = 0;
  std::string failures;  ///< the status of each failed scrape (0: no answer)
};
template <class Attack>
scrape_record scrape_under(std::uint16_t port, int threads, Attack attack) {
  std::atomic<bool> stop{false};
  std::vector<std::thread> attackers;
  for (int i = 0; i < threads; ++i) attackers.emplace_back([&] { attack(stop); });
  std::this_thread::sleep_for(500ms);  // the attack takes every slot first
  scrape_record r;
  auto end = clock_type::now() + 3s;
  while (clock_type::now() < end) {
    auto t0 = clock_type::now();
    http_answer a = http_get(port, "/metrics");
    r.slowest_ms = std::max(r.slowest_ms, ms_between(t0, clock_type::now()));
    ++r.scrapes;
    if (a.status != 200) {
      ++r.failed;
      r.failures += std::to_string(a.status) + " ";
    }
    std::this_thread::sleep_for(100ms);
  }
  stop = true;
  for (auto& t : attackers) t.join();
  return r;
}

}  // namespace

TEST_CASE("hostile: slow-loris clients on the metrics port do not lock a scraper out") {
  metrics_daemon md;
  std::size_t rss_before = md.d->rss_kib();
  // Each thread keeps 16 connections dripping a head a byte at a time, and
  // opens a new one as soon as the daemon closes one.
  scrape_record r = scrape_under(md.port, 4, [&](std::atomic<bool>& stop) {
    std::vector<std::unique_ptr<tcp_client>> held(16);
    while (!stop) {
      for (auto& c : held) {
        if (!c || !c->send("a")) {
          c = std::make_unique<tcp_client>(md.port, 100ms);
          c->send("GET /metrics HTTP/1.1\r\nX-Slow: ");
        }
      }
      std::this_thread::sleep_for(50ms);
    }
  });
  INFO("scrapes " << r.scrapes << ", failed " << r.failed << " (" << r.failures << "), slowest "
                  << r.slowest_ms << " ms\n"
                  << md.d->log_tail());
  CHECK(r.scrapes >= 10);
  CHECK(r.failed == 0);
  CHECK(r.slowest_ms < (sanitizer_build ? 2000 : 500));
  md.serves();
  MESSAGE("daemon RSS " << rss_before / 1024 << " MiB before, " << md.d->rss_kib() / 1024
                        << " MiB after");
  CHECK(md.d->rss_kib() < rss_before + rss_bound_kib);
}

TEST_CASE("hostile: floods of oversized request heads cost the daemon no memory and no scrape") {
  metrics_daemon md;
  std::size_t rss_before = md.d->rss_kib();
  std::string huge = "GET /metrics HTTP/1.1\r\nX-Big: " + std::string(1 << 20, 'a');
  scrape_record r = scrape_under(md.port, 4, [&](std::atomic<bool>& stop) {
    while (!stop) {
      tcp_client c(md.port, 1s);
      c.send(huge);  // cut off after 8 KiB: the rest is refused or reset
      c.read_all();
    }
  });
  INFO("scrapes " << r.scrapes << ", failed " << r.failed << " (" << r.failures << "), slowest "
                  << r.slowest_ms << " ms");
  CHECK(r.failed == 0);
  md.serves();
  MESSAGE("daemon RSS " << rss_before / 1024 << " MiB before, " << md.d->rss_kib() / 1024
                        << " MiB after");
  CHECK(md.d->rss_kib() < rss_before + rss_bound_kib);
}

TEST_SUITE_END();
