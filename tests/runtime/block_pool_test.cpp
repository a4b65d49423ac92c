// block_pool: blocks made on one thread and freed on another come back in
// magazines through the depot, which keeps a bounded number of them.
#include "runtime/block_pool.hpp"

#include <doctest/doctest.h>

#include <cstring>
#include <thread>
#include <vector>

namespace {

using luad::runtime::block_pool;
using luad::runtime::k_pool_blocks;

// A size no other code pools, so that the depot holds only this test's blocks.
using pool = block_pool<200>;

std::vector<void*> take_on_new_thread(std::size_t n) {
  std::vector<void*> blocks;
  std::thread([&] {
    for (std::size_t i = 0; i < n; ++i) {
      void* b = pool::take();
      if (!b) break;
      std::memset(b, 0xab, 200);  // the whole block is ours
      blocks.push_back(b);
    }
  }).join();
  REQUIRE(blocks.size() == n);
  return blocks;
}

void give_on_new_thread(const std::vector<void*>& blocks) {
  std::thread([&] {
    for (void* b : blocks) pool::give(b);
  }).join();
}

}  // namespace

TEST_CASE("block_pool: blocks freed on another thread wait in the depot, bounded, for any taker") {
  REQUIRE(pool::depot_blocks() == 0);
  const std::size_t full = pool::k_magazine * pool::k_depot_max;

  // 1,000 freed on another thread: 15 full magazines reach the depot; the
  // giver's last 40 are freed when its thread ends.
  give_on_new_thread(take_on_new_thread(1000));
  CHECK(pool::depot_blocks() == (k_pool_blocks ? 1000 / pool::k_magazine * pool::k_magazine : 0));

  // A taker empties the depot a magazine at a time, and gets its blocks.
  std::size_t before = pool::depot_blocks();
  std::vector<void*> again = take_on_new_thread(before);
  CHECK(pool::depot_blocks() == 0);
  give_on_new_thread(again);

  // Ten times the bound freed at once: the depot keeps only the bound.
  std::vector<void*> many = take_on_new_thread(10 * full);
  give_on_new_thread(many);
  CHECK(pool::depot_blocks() == (k_pool_blocks ? full : 0));
  give_on_new_thread(take_on_new_thread(pool::depot_blocks()));  // drained for the next run
}

TEST_CASE("block_pool: a thread's own frees come back to it from its magazine, last in first out") {
  if (!k_pool_blocks) return;  // under ASan every block is malloc's own: nothing to check
  std::thread([] {
    void* a = pool::take();
    void* b = pool::take();
    REQUIRE(a);
    REQUIRE(b);
    pool::give(a);
    pool::give(b);
    CHECK(pool::take() == b);
    CHECK(pool::take() == a);
    pool::give(a);
    pool::give(b);
  }).join();
}
