// The fetch dispatcher on its own (no Lua): the concurrency cap and its FIFO
// queue, abandoned requests, the idle pool's cap and expiry, stop, bad
// commands. Completions go to a recording double; the server is real.
#include "dispatcher/fetch.hpp"

#include <doctest/doctest.h>

#include <atomic>
#include <mutex>
#include <string>
#include <vector>

#include "tests/http_server.hpp"
#include "tests/support.hpp"

namespace {

using luad::dispatcher::completion_target;
using luad::dispatcher::fetch;
using luad::runtime::command;
using luad::runtime::command_id;
using luad::runtime::completion;
using luad::runtime::error_kind;
using luad::runtime::outcome;
using luad::runtime::value;
using luad::test::eventually;
using luad::test::http_server;

// Records outcomes in completion order; `gone` makes every request look abandoned.
struct recorder final : completion_target {
  std::atomic<bool> gone{false};
  std::mutex mu;
  std::vector<std::pair<std::uint64_t, outcome>> done;

  void add_ref() noexcept override {}
  void release_ref() noexcept override {}
  bool awaits(std::uint64_t) const noexcept override { return !gone.load(); }
  void complete(std::uint64_t token, outcome&& o) noexcept override {
    std::lock_guard lock(mu);
    done.emplace_back(token, std::move(o));
  }
  std::size_t count() {
    std::lock_guard lock(mu);
    return done.size();
  }
};

command get(const std::string& url) {
  return {command_id::fetch_request, value(value::map{{"url", url}})};
}

std::int64_t status_of(const outcome& o) {
  if (o.err) return -1;
  for (const auto& [key, v] : std::get<value::map>(o.val.data))
    if (key == "status") return *v.get<std::int64_t>();
  return 0;
}

}  // namespace

TEST_CASE("fetch: requests over the cap wait in FIFO order") {
  http_server server;
  recorder rec;  // outlives the dispatcher's thread
  fetch f(fetch::options{.max_in_flight = 1});
  f.start();
  for (std::uint64_t i = 0; i < 4; ++i) f.submit(get(server.url("/slow/100")), completion(&rec, i));
  CHECK(eventually([&] { return f.snapshot().queued == 3; }));
  CHECK(f.snapshot().in_flight == 1);
  REQUIRE(eventually([&] { return rec.count() == 4; }));
  std::lock_guard lock(rec.mu);
  for (std::uint64_t i = 0; i < 4; ++i) {
    CHECK(rec.done[i].first == i);
    CHECK(status_of(rec.done[i].second) == 200);
  }
  CHECK(server.accepted() == 1);  // one slot, one kept-alive connection
}

TEST_CASE("fetch: abandoned requests, running or queued, are dropped and their sockets closed") {
  http_server server;
  recorder rec;
  fetch f(fetch::options{.max_in_flight = 2});
  f.start();
  for (int i = 0; i < 5; ++i) f.submit(get(server.url("/hang")), completion(&rec));
  REQUIRE(eventually([&] { return server.requests() == 2; }));
  CHECK(f.snapshot().in_flight == 2);
  CHECK(f.snapshot().queued == 3);
  rec.gone = true;  // as when the waiting processes are killed
  CHECK(eventually([&] { return f.snapshot().in_flight == 0 && f.snapshot().queued == 0; }));
  CHECK(eventually([&] { return server.closed() == 2; }));
  CHECK(server.accepted() == 2);
  CHECK(rec.count() == 5);
  CHECK(f.snapshot().idle_connections == 0);  // a half-used connection is never pooled
  CHECK(server.requests() == 2);              // the queued ones never started
}

TEST_CASE("fetch: the idle pool keeps at most max_idle_per_host and expires old ones") {
  http_server server;
  recorder rec;
  fetch f(fetch::options{.max_idle_per_host = 2, .idle_timeout = std::chrono::milliseconds(200)});
  f.start();
  for (int i = 0; i < 5; ++i) f.submit(get(server.url("/slow/100")), completion(&rec));
  REQUIRE(eventually([&] { return rec.count() == 5; }));
  CHECK(server.accepted() == 5);
  CHECK(f.snapshot().idle_connections == 2);
  CHECK(eventually([&] { return server.closed() == 3; }));
  CHECK(eventually([&] { return f.snapshot().idle_connections == 0 && server.closed() == 5; }));
}

TEST_CASE("fetch: stop cancels requests in flight and later submits fail") {
  http_server server;
  recorder rec;
  fetch f;
  f.start();
  f.submit(get(server.url("/hang")), completion(&rec));
  REQUIRE(eventually([&] { return server.requests() == 1; }));
  f.stop();
  REQUIRE(rec.count() == 1);
  CHECK(rec.done[0].second.err->kind == error_kind::canceled);
  CHECK(eventually([&] { return server.closed() == 1; }));
  f.submit(get(server.url("/")), completion(&rec));
  REQUIRE(rec.count() == 2);
  CHECK(rec.done[1].second.err->kind == error_kind::unavailable);
}

TEST_CASE("fetch: bad commands complete at once with invalid") {
  recorder rec;
  fetch f;
  f.start();
  f.submit({command_id::fetch_request, value("http://x/")}, completion(&rec));
  f.submit({command_id::fetch_request, value(value::map{{"method", "GET"}})}, completion(&rec));
  f.submit({command_id::fetch_request,
            value(value::map{{"url", "http://127.0.0.1/"}, {"max_body", value(1 << 30)}})},
           completion(&rec));
  f.submit({command_id::fetch_request,
            value(value::map{{"url", "http://127.0.0.1/"}, {"colour", "red"}})},
           completion(&rec));
  REQUIRE(rec.count() == 4);
  for (auto& [token, o] : rec.done) {
    REQUIRE(o.err);
    CHECK(o.err->kind == error_kind::invalid);
  }
  CHECK(f.snapshot().connections_opened == 0);
}

TEST_CASE("fetch: an allow list is checked on every hop") {
  http_server server;
  recorder rec;
  fetch f;
  f.start();
  value::array allow{value("http:localhost")};
  f.submit({command_id::fetch_request,
            value(value::map{{"url", server.url("/")}, {"allow", value(allow)}})},
           completion(&rec));
  REQUIRE(eventually([&] { return rec.count() == 1; }));
  REQUIRE(rec.done[0].second.err);
  CHECK(rec.done[0].second.err->kind == error_kind::permission_denied);
  CHECK(server.accepted() == 0);
}
