// A worker's timer wheel: order within and across ticks, the far heap beyond
// the wheel's second, deadlines already past, purging and emptying.
#include "runtime/timer_wheel.hpp"

#include <doctest/doctest.h>

#include <cstdint>
#include <vector>

namespace {

using luad::runtime::completion;
using luad::runtime::completion_target;
using luad::runtime::timer_wheel;

constexpr std::int64_t tick = timer_wheel::k_tick_ns;  // 100 µs

// Records the order its completions ran in; `waiting` false: abandoned.
struct log_target final : completion_target {
  std::vector<std::uint64_t>* order = nullptr;
  bool waiting = true;
  int refs = 0;
  void add_ref() noexcept override { ++refs; }
  void release_ref() noexcept override { --refs; }
  bool awaits(std::uint64_t) const noexcept override { return waiting; }
  void complete(std::uint64_t token, luad::runtime::outcome&&) noexcept override {
    order->push_back(token);
  }
};

}  // namespace

TEST_CASE("timer wheel: earliest tick first, FIFO within a tick, nothing early") {
  std::vector<std::uint64_t> order;
  log_target t;
  t.order = &order;
  timer_wheel w;
  const std::int64_t now = 5'000 * tick + 3 * tick / 10;  // mid-tick
  w.add(now, now + 30 * tick, completion(&t, 1));
  w.add(now, now + 10 * tick, completion(&t, 2));
  w.add(now, now + 10 * tick + 1, completion(&t, 3));  // rounds up to the same tick as 2
  w.add(now, now + 20 * tick, completion(&t, 4));
  CHECK(w.size() == 4);
  CHECK(w.next_deadline() == 5'011 * tick);  // 10.3 ticks rounded up to a whole one

  std::vector<completion> due;
  w.take_due(5'011 * tick - 1, due);  // just before the tick: nothing
  CHECK(due.empty());
  w.take_due(5'011 * tick, due);
  CHECK(due.size() == 2);
  w.take_due(6'000 * tick, due);
  for (completion& c : due) c.succeed();
  CHECK(order == std::vector<std::uint64_t>{2, 3, 4, 1});
  CHECK(w.size() == 0);
  CHECK(w.next_deadline() == timer_wheel::k_never);
  CHECK(t.refs == 0);
}

TEST_CASE("timer wheel: a 10 ms sleep fires within 100 µs of its deadline, not at the next ms") {
  // A loop of sleeps starts each one just after the tick that ended the last,
  // so a 1 ms tick made every 10 ms sleep last ~11 ms.
  std::vector<std::uint64_t> order;
  log_target t;
  t.order = &order;
  timer_wheel w;
  const std::int64_t ms = 1'000'000;
  const std::int64_t now = 7'000 * ms + 20'000;  // 20 µs after a millisecond began
  w.add(now, now + 10 * ms, completion(&t, 1));
  CHECK(w.next_deadline() >= now + 10 * ms);
  CHECK(w.next_deadline() - (now + 10 * ms) < 100'000);
  std::vector<completion> due;
  w.take_due(now + 10 * ms + 99'999, due);
  REQUIRE(due.size() == 1);
  due.front().succeed();
  CHECK(order == std::vector<std::uint64_t>{1});
}

TEST_CASE("timer wheel: deadlines past the wheel's span wait in the heap, in order") {
  static_assert(timer_wheel::k_slots < 3'000, "3,000 ticks ahead must be past the wheel");
  std::vector<std::uint64_t> order;
  log_target t;
  t.order = &order;
  timer_wheel w;
  const std::int64_t now = 1'000'000 * tick;
  w.add(now, now + 3'600'000 * tick, completion(&t, 1));  // 6 minutes
  w.add(now, now + 3'000 * tick, completion(&t, 2));      // 300 ms: the heap too
  w.add(now, now + 5 * tick, completion(&t, 3));          // the wheel
  CHECK(w.size() == 3);
  CHECK(w.next_deadline() == now + 5 * tick);
  std::vector<completion> due;
  w.take_due(now + 5 * tick, due);
  CHECK(due.size() == 1);
  CHECK(w.next_deadline() == now + 3'000 * tick);
  // A timer added later for the same tick as a far one fires after it.
  w.add(now + 1'500 * tick, now + 3'000 * tick, completion(&t, 4));
  w.take_due(now + 2'999 * tick, due);
  CHECK(due.size() == 1);
  w.take_due(now + 3'000 * tick, due);
  CHECK(due.size() == 3);
  CHECK(w.next_deadline() == now + 3'600'000 * tick);
  w.take_due(now + 3'600'000 * tick, due);
  for (completion& c : due) c.succeed();
  CHECK(order == std::vector<std::uint64_t>{3, 2, 4, 1});
}

TEST_CASE(
    "timer wheel: a deadline already past fires at the next tick; a late check fires them all") {
  std::vector<std::uint64_t> order;
  log_target t;
  t.order = &order;
  timer_wheel w;
  const std::int64_t now = 77 * tick;
  w.add(now, now + 2 * tick, completion(&t, 1));
  std::vector<completion> due;
  w.take_due(now + 50 * tick, due);  // a worker that looked late
  CHECK(due.size() == 1);
  // In the past, in a tick already checked: the next tick's check fires it.
  w.add(now + 50 * tick, now + 10 * tick, completion(&t, 2));
  CHECK(w.next_deadline() == now + 51 * tick);
  w.take_due(now + 51 * tick, due);
  CHECK(due.size() == 2);
  // Thousands of ticks of sleeping, in many ticks, all fire in one late check.
  for (std::uint64_t i = 0; i < 3000; ++i)
    w.add(now + 50 * tick, now + 50 * tick + static_cast<std::int64_t>(i) * tick,
          completion(&t, 10 + i));
  w.take_due(now + 10'000 * tick, due);
  for (completion& c : due) c.succeed();
  REQUIRE(order.size() == 3002);
  for (std::size_t i = 2; i < order.size(); ++i) CHECK(order[i] == 8 + i);
  CHECK(w.size() == 0);
}

TEST_CASE("timer wheel: abandoned timers are purged; take_all empties it") {
  std::vector<std::uint64_t> order;
  log_target gone, staying;
  gone.order = staying.order = &order;
  timer_wheel w;
  const std::int64_t now = 9 * tick;
  for (int i = 0; i < 600; ++i) w.add(now, now + (i % 2000) * tick, completion(&gone, 1));
  for (int i = 0; i < 500; ++i) w.add(now, now + (i % 2000) * tick, completion(&staying, 2));
  CHECK(w.wants_purge());  // 1,100 held, past the first purge point (1,024)
  gone.waiting = false;
  CHECK(w.live() == 500);
  std::vector<completion> dropped;
  w.purge(dropped);
  CHECK(dropped.size() == 600);
  CHECK(w.size() == 500);
  CHECK_FALSE(w.wants_purge());
  dropped.clear();  // completes them as canceled: the abandoned target ignores it
  CHECK(gone.refs == 0);
  std::vector<completion> left;
  w.take_all(left);
  CHECK(left.size() == 500);
  CHECK(w.size() == 0);
  CHECK(w.next_deadline() == timer_wheel::k_never);
  left.clear();
  CHECK(staying.refs == 0);
}
