// Latency histograms: which bucket a duration lands in (bounds are inclusive),
// the cumulative counts and the sum, and observations from several threads.
#include "runtime/histogram.hpp"

#include <doctest/doctest.h>

#include <thread>
#include <vector>

using luad::runtime::histogram;
using namespace std::chrono_literals;

TEST_CASE("histogram: a duration counts in the first bucket whose bound it does not pass") {
  histogram h;
  h.observe(1ms);     // exactly a bound: le="0.001"
  h.observe(1001us);  // just past it: le="0.0025"
  h.observe(-5ms);    // a clock step back counts as 0
  h.observe(31s);     // past the last bound: +Inf only
  histogram::snapshot s = h.read();
  REQUIRE(histogram::bounds[3] == 0.001);
  CHECK(s.cumulative[0] == 1);  // the negative one
  CHECK(s.cumulative[2] == 1);
  CHECK(s.cumulative[3] == 2);
  CHECK(s.cumulative[4] == 3);
  CHECK(s.cumulative[histogram::bounds.size() - 1] == 3);
  CHECK(s.cumulative.back() == 4);
  CHECK(s.count == 4);
  CHECK(s.sum == doctest::Approx(31.002001));
}

TEST_CASE("histogram: observations from several threads all count") {
  histogram h;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&h, t] {
      for (int i = 0; i < 10000; ++i) h.observe(std::chrono::microseconds(t * 1000 + i % 7));
    });
  for (auto& th : threads) th.join();
  histogram::snapshot s = h.read();
  CHECK(s.count == 40000);
  CHECK(s.cumulative.back() == 40000);
  for (std::size_t i = 1; i < s.cumulative.size(); ++i)
    CHECK(s.cumulative[i] >= s.cumulative[i - 1]);
}
