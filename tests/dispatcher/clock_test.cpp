// Clock dispatcher: ordering, zero sleeps, a million pending timers, stop.
#include "dispatcher/clock.hpp"

#include "tests/support.hpp"

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

namespace {

using namespace luad::dispatcher;

// Counts completions and remembers their order (a double of many processes).
struct counter final : completion_target {
  std::atomic<int> ok{0}, canceled{0}, invalid{0};
  std::mutex mu;
  std::vector<int> order;
  void add_ref() noexcept override {}
  void release_ref() noexcept override {}
  bool awaits(std::uint64_t) const noexcept override { return true; }
  void complete(std::uint64_t, luad::runtime::outcome&& o) noexcept override {
    if (o.err) {
      canceled++;
      if (o.err->kind == luad::runtime::error_kind::invalid) invalid++;
    } else {
      ok++;
    }
  }
};

struct tagged final : completion_target {
  counter* parent;
  int tag;
  void add_ref() noexcept override {}
  void release_ref() noexcept override {}
  bool awaits(std::uint64_t) const noexcept override { return true; }
  void complete(std::uint64_t, luad::runtime::outcome&&) noexcept override {
    std::lock_guard lock(parent->mu);
    parent->order.push_back(tag);
  }
};

}  // namespace

TEST_CASE("timers fire in deadline order; zero completes inline") {
  counter parent;  // declared before the clock: it outlives the io thread
  std::vector<tagged> tags(4);
  luad::dispatcher::clock c;
  c.start();
  double delays[] = {0.03, 0.01, 0.02, 0.0};
  for (int i = 0; i < 4; ++i) {
    tags[i].parent = &parent;
    tags[i].tag = i;
    c.submit({command_id::clock_sleep, luad::runtime::value(delays[i])}, completion(&tags[i]));
  }
  {
    std::lock_guard lock(parent.mu);
    REQUIRE(parent.order.size() == 1);  // the zero sleep, before submit returned
    CHECK(parent.order[0] == 3);
  }
  REQUIRE(luad::test::eventually([&] {
    std::lock_guard lock(parent.mu);
    return parent.order.size() == 4;
  }));
  std::lock_guard lock(parent.mu);
  CHECK(parent.order == std::vector<int>{3, 1, 2, 0});
}

TEST_CASE("a bad argument completes with invalid") {
  counter cnt;  // declared before the clock: it outlives the io thread
  luad::dispatcher::clock c;
  c.start();
  c.submit({command_id::clock_sleep, luad::runtime::value("soon")}, completion(&cnt));
  CHECK(cnt.canceled == 1);
  CHECK(cnt.invalid == 1);
}

TEST_CASE("the clock holds a million pending timers and cancels them on stop") {
  counter cnt;  // declared before the clock: it outlives the io thread
  luad::dispatcher::clock c;
  c.start();
  constexpr int n = 1'000'000;
  for (int i = 0; i < n; ++i) {
    c.submit({command_id::clock_sleep, luad::runtime::value(3600.0 + i % 1000)}, completion(&cnt));
  }
  CHECK(c.pending() == static_cast<std::size_t>(n));
  c.stop();
  CHECK(cnt.canceled == n);
  CHECK(cnt.ok == 0);
  CHECK(c.pending() == 0);
}

TEST_CASE("many short timers all fire") {
  counter cnt;  // declared before the clock: it outlives the io thread
  luad::dispatcher::clock c;
  c.start();
  for (int i = 0; i < 20000; ++i) {
    c.submit({command_id::clock_sleep, luad::runtime::value(0.001 * (i % 20))}, completion(&cnt));
  }
  REQUIRE(luad::test::eventually([&] { return cnt.ok.load() == 20000; }));
  CHECK(c.pending() == 0);
}

namespace {
// A waiter that can give up (a killed process, a canceled time.after).
struct quitter final : completion_target {
  std::atomic<bool> waiting{true};
  std::atomic<int> refs{0};
  void add_ref() noexcept override { refs++; }
  void release_ref() noexcept override { refs--; }
  bool awaits(std::uint64_t) const noexcept override { return waiting.load(); }
  void complete(std::uint64_t, luad::runtime::outcome&&) noexcept override {}
};
}  // namespace

TEST_CASE(
    "timers nobody awaits any more are purged as the heap grows, not kept to their deadline") {
  quitter gone, staying;  // declared before the clock: they outlive the io thread
  luad::dispatcher::clock c;
  c.start();
  for (int i = 0; i < 5000; ++i)
    c.submit({command_id::clock_sleep, luad::runtime::value(3600.0)}, completion(&gone));
  gone.waiting = false;  // e.g. the process that set them has ended
  CHECK(c.live() == 0);
  // The heap purges when it reaches twice what the last purge left (8192 here).
  for (int i = 0; i < 3300; ++i)
    c.submit({command_id::clock_sleep, luad::runtime::value(3600.0)}, completion(&staying));
  CHECK(gone.refs == 0);       // every abandoned timer dropped its reference...
  CHECK(c.pending() == 3300);  // ...and left the heap
  CHECK(c.live() == 3300);
  c.stop();
}
