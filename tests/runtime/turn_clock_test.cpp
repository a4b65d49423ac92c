// The worker's turn clock: its readings stay within a few microseconds of the
// steady clock on either side, never go back, and come from the TSC wherever
// the kernel keeps time by it.
#include "runtime/turn_clock.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <string>

namespace {

using luad::runtime::steady_ns;
using luad::runtime::turn_clock;

bool kernel_uses_tsc() {
  std::ifstream f("/sys/devices/system/clocksource/clocksource0/current_clocksource");
  std::string source;
  return f >> source && source == "tsc";
}

}  // namespace

TEST_CASE("turn clock: readings stay between the steady readings around them and never go back") {
  turn_clock clock;
  // A reading may be off the steady clock by half a tight pair (1 us) plus
  // the rate's error over at most 1 ms of extrapolation (parts per million:
  // nanoseconds). 5 us allows that and catches a rate 1 % off (10 us).
  constexpr std::int64_t tolerance_ns = 5'000;
  std::int64_t worst_early = 0, worst_late = 0, last = 0;
  long backwards = 0, readings = 0;
  std::int64_t end = steady_ns() + 400'000'000;  // past the first two windows
  while (true) {
    std::int64_t before = steady_ns();
    std::int64_t t = clock.now();
    std::int64_t after = steady_ns();
    ++readings;
    worst_early = std::max(worst_early, before - t);
    worst_late = std::max(worst_late, t - after);
    if (t < last) ++backwards;
    last = t;
    if (after >= end) break;
  }
  INFO("readings " << readings << ", from the TSC: " << turn_clock::from_tsc());
  CHECK(worst_early <= tolerance_ns);
  CHECK(worst_late <= tolerance_ns);
  CHECK(backwards == 0);
  if (kernel_uses_tsc()) CHECK(turn_clock::from_tsc());
}
