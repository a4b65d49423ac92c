// The span pool under process heaps: page-aligned spans of each size, reused
// by size, and trim() giving free spans' pages back to the kernel while
// keeping them usable.
#include "runtime/span_pool.hpp"

#include <doctest/doctest.h>

#include <sys/mman.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <set>
#include <thread>
#include <vector>

#include "runtime/block_pool.hpp"

namespace span_pool = luad::runtime::span_pool;

namespace {

constexpr std::size_t page = span_pool::k_page;

// The first whole page inside the span.
unsigned char* first_page(void* span) {
  auto a = reinterpret_cast<std::uintptr_t>(span);
  return reinterpret_cast<unsigned char*>((a + page - 1) / page * page);
}

// How many of the whole pages inside the span are resident (mincore).
std::size_t resident_pages(void* span, std::size_t bytes) {
  unsigned char* from = first_page(span);
  std::size_t pages = (static_cast<unsigned char*>(span) + bytes - from) / page;
  std::vector<unsigned char> vec(pages);
  REQUIRE(::mincore(from, pages * page, vec.data()) == 0);
  std::size_t n = 0;
  for (unsigned char v : vec) n += v & 1;
  return n;
}

}  // namespace

TEST_CASE("span_pool hands out distinct aligned spans of each size and reuses them by size") {
  std::set<std::uintptr_t> seen;
  std::vector<std::pair<void*, std::size_t>> spans;
  for (std::size_t bytes = span_pool::k_unit; bytes <= span_pool::k_max;
       bytes += span_pool::k_unit) {
    for (int i = 0; i < 40; ++i) {
      auto* p = static_cast<unsigned char*>(span_pool::take(bytes));
      REQUIRE(p);
      if constexpr (luad::runtime::k_pool_blocks)
        CHECK(reinterpret_cast<std::uintptr_t>(p) % span_pool::k_unit == 0);
      std::memset(p, 0xab, bytes);  // all of it is writable
      CHECK(seen.insert(reinterpret_cast<std::uintptr_t>(p)).second);
      spans.emplace_back(p, bytes);
    }
  }
  // No two live spans overlap.
  std::vector<std::pair<std::uintptr_t, std::size_t>> sorted;
  for (auto [p, n] : spans) sorted.emplace_back(reinterpret_cast<std::uintptr_t>(p), n);
  std::sort(sorted.begin(), sorted.end());
  for (std::size_t i = 1; i < sorted.size(); ++i)
    CHECK(sorted[i - 1].first + sorted[i - 1].second <= sorted[i].first);
  for (auto [p, n] : spans) span_pool::give(p, n);
  if constexpr (luad::runtime::k_pool_blocks) {
    // The last span given of a size is the next taken of that size.
    void* again = span_pool::take(span_pool::k_max);
    CHECK(again == spans.back().first);
    span_pool::give(again, span_pool::k_max);
  }
}

TEST_CASE("span_pool trim gives free spans back to the kernel and they stay usable") {
  if constexpr (!luad::runtime::k_pool_blocks) {
    // Under ASan spans are malloc's, and trim has nothing of its own.
    CHECK(span_pool::trim(0, SIZE_MAX) == 0);
    return;
  }
  constexpr std::size_t bytes = 2 * page;  // at least one whole page inside each
  span_pool::trim(0, SIZE_MAX);            // the depot's warm spans from earlier tests
  std::vector<void*> spans;
  for (int i = 0; i < 64; ++i) {
    void* p = span_pool::take(bytes);
    REQUIRE(p);
    std::memset(p, 0x5a, bytes);
    spans.push_back(p);
  }
  for (void* p : spans) CHECK(resident_pages(p, bytes) >= 1);
  for (void* p : spans) span_pool::give(p, bytes);  // most overflow this thread's cache
  const span_pool::stats before = span_pool::read();
  CHECK(before.depot_warm >= 32 * bytes);

  // A budget is kept to, and so is what is to be kept.
  CHECK(span_pool::trim(before.depot_warm - bytes, SIZE_MAX) == bytes);
  std::size_t given = span_pool::trim(0, 4 * bytes);
  CHECK(given == 4 * bytes);
  given += span_pool::trim(0, SIZE_MAX);
  const span_pool::stats after = span_pool::read();
  CHECK(after.depot_warm == 0);
  CHECK(after.trimmed - before.trimmed == bytes + given);
  CHECK(after.depot_cold >= before.depot_cold + given);

  // The whole pages of the spans that went to the depot are no longer
  // resident (they are adjacent: one run)...
  std::size_t gone = 0;
  for (void* p : spans) gone += resident_pages(p, bytes) == 0;
  CHECK(gone >= 32);
  // ...and come back zeroed when taken again, as many as were trimmed.
  std::size_t zeroed = 0;
  std::vector<void*> again;
  for (int i = 0; i < 64; ++i) {
    auto* p = static_cast<unsigned char*>(span_pool::take(bytes));
    REQUIRE(p);
    zeroed += *first_page(p) == 0;
    again.push_back(p);
  }
  CHECK(zeroed >= 32);
  for (void* p : again) span_pool::give(p, bytes);
}

TEST_CASE("span_pool cuts a smaller span from a larger warm one before mapping fresh memory") {
  if constexpr (!luad::runtime::k_pool_blocks) return;  // malloc's spans under ASan
  constexpr std::size_t big = span_pool::k_max, small = 2 * span_pool::k_unit;
  constexpr int n = 24;
  // No free span of the small size in the depot (earlier cases in this
  // process may have left some): take them until fresh memory is cut. The
  // ones this thread's cache still holds are not the depot's.
  std::vector<void*> drained;
  for (const std::size_t carved0 = span_pool::read().carved; span_pool::read().carved == carved0;)
    drained.push_back(span_pool::take(small));
  span_pool::trim(0, SIZE_MAX);  // nothing warm of any size
  std::vector<std::uintptr_t> bigs;
  // A thread's cache goes to the depot when the thread ends: n warm 16 KiB spans.
  std::thread([&] {
    std::vector<void*> spans;
    for (int i = 0; i < n; ++i) spans.push_back(span_pool::take(big));
    for (void* p : spans) {
      REQUIRE(p);
      std::memset(p, 0x11, big);
      bigs.push_back(reinterpret_cast<std::uintptr_t>(p));
      span_pool::give(p, big);
    }
  }).join();
  const span_pool::stats before = span_pool::read();
  CHECK(before.depot_warm >= n * big);

  // Another thread's 1 KiB spans are cut from them: nothing new is carved,
  // each lies inside one of the 16 KiB spans, and is still warm (not zeroed).
  std::vector<void*> smalls;
  std::thread([&] {
    for (int i = 0; i < 40; ++i) smalls.push_back(span_pool::take(small));
  }).join();
  const span_pool::stats after = span_pool::read();
  CHECK(after.carved == before.carved);
  std::set<std::uintptr_t> distinct;
  for (void* p : smalls) {
    REQUIRE(p);
    auto a = reinterpret_cast<std::uintptr_t>(p);
    CHECK(distinct.insert(a).second);
    bool inside = std::any_of(bigs.begin(), bigs.end(),
                              [&](std::uintptr_t b) { return a >= b && a + small <= b + big; });
    CHECK(inside);
    CHECK(*static_cast<unsigned char*>(p) == 0x11);
  }
  // What was cut off stays warm in the depot: it lost just what was taken
  // (five batches of eight, none left in the ended thread's cache).
  CHECK(before.depot_warm - after.depot_warm == 40 * small);
  for (void* p : smalls) span_pool::give(p, small);
  for (void* p : drained) span_pool::give(p, small);
}

TEST_CASE("span_pool takes a trimmed span of the size asked before cutting a larger warm one") {
  if constexpr (!luad::runtime::k_pool_blocks) return;  // malloc's spans under ASan
  constexpr std::size_t big = span_pool::k_max, small = 3 * span_pool::k_unit;
  // Small spans in use, then freed by their thread and trimmed: cold.
  std::vector<std::uintptr_t> cold;
  std::thread([&] {
    std::vector<void*> spans;
    for (int i = 0; i < 16; ++i) spans.push_back(span_pool::take(small));
    for (void* p : spans) {
      REQUIRE(p);
      cold.push_back(reinterpret_cast<std::uintptr_t>(p));
      span_pool::give(p, small);
    }
  }).join();
  span_pool::trim(0, SIZE_MAX);
  // Then large spans freed warm.
  std::thread([&] {
    std::vector<void*> spans;
    for (int i = 0; i < 8; ++i) spans.push_back(span_pool::take(big));
    for (void* p : spans) span_pool::give(p, big);
  }).join();
  const span_pool::stats before = span_pool::read();
  REQUIRE(before.depot_warm >= 8 * big);
  // The small size is served from its own trimmed spans: the warm large ones
  // stay whole.
  std::vector<void*> again;
  std::thread([&] {
    for (int i = 0; i < 8; ++i) again.push_back(span_pool::take(small));
  }).join();
  const span_pool::stats after = span_pool::read();
  CHECK(after.depot_warm == before.depot_warm);
  CHECK(after.carved == before.carved);
  for (void* p : again) {
    REQUIRE(p);
    CHECK(std::find(cold.begin(), cold.end(), reinterpret_cast<std::uintptr_t>(p)) != cold.end());
  }
  for (void* p : again) span_pool::give(p, small);
}
