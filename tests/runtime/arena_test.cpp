// The per-process heap: size classes, chunk accounting, the limit, and the
// first chunk sized from what earlier processes of the same script needed.
#include "runtime/arena.hpp"

#include <doctest/doctest.h>

#include <malloc.h>

#include <cstdint>
#include <vector>

#include "runtime/code.hpp"
#include "runtime/process.hpp"
#include "runtime/sanitizers.hpp"
#include "runtime/scheduler.hpp"
#include "tests/support.hpp"

using luad::runtime::arena;

TEST_CASE("an arena recycles small blocks by size class and counts its chunks") {
  arena a;
  CHECK(a.footprint() == 0);
  CHECK(a.small_bytes() == 0);
  void* p = a.allocate(40, SIZE_MAX);
  REQUIRE(p);
  CHECK(a.footprint() == 4096);
  CHECK(a.small_bytes() == 48);  // rounded up to its 16-byte class
  a.release(p, 40);
  CHECK(a.allocate(33, SIZE_MAX) == p);  // same class: the freed block comes back
  void* big = a.allocate(1000, SIZE_MAX);
  REQUIRE(big);
  CHECK(a.footprint() == 4096 + 1000);  // large blocks come from malloc
  a.release(big, 1000);
  CHECK(a.footprint() == 4096);
  a.reset();
  CHECK(a.footprint() == 0);
}

TEST_CASE("an arena refuses to grow past its limit") {
  arena a;
  CHECK(a.allocate(16, 1000) == nullptr);  // the first chunk alone is over
  std::vector<void*> blocks;
  while (void* b = a.allocate(256, 8192)) blocks.push_back(b);
  CHECK(a.footprint() <= 8192);
  CHECK(blocks.size() >= 15);  // two chunks' worth fitted
}

TEST_CASE("reserve_first sizes the first chunk, clamped, and only before any allocation") {
  arena a;
  a.reserve_first(2000, SIZE_MAX);
  CHECK(a.footprint() == 2048);     // 2000 + the chunk header, to 64 bytes
  a.reserve_first(9000, SIZE_MAX);  // too late: no effect
  CHECK(a.footprint() == 2048);
  arena tiny, huge, unknown;
  tiny.reserve_first(10, SIZE_MAX);
  CHECK(tiny.footprint() == 1024);
  huge.reserve_first(1 << 20, SIZE_MAX);
  CHECK(huge.footprint() == 64 * 1024);
  unknown.reserve_first(0, SIZE_MAX);  // nothing known: the usual 4 KiB on demand
  CHECK(unknown.footprint() == 0);
}

TEST_CASE("later processes of a script start with a first chunk sized to what the first needed") {
  auto& eng = luad::test::shared_engine();
  auto code = luad::runtime::compile(
      "local p, t = require('process'), require('time') p.receive('stop')", "sized.lua");
  auto footprint_when_waiting = [&] {
    luad::runtime::pid id = *eng.scheduler().spawn(code, {});
    REQUIRE(static_cast<bool>(id));
    std::size_t bytes = 0;
    REQUIRE(luad::test::eventually([&] {
      auto* p = eng.scheduler().find(id);
      if (!p) return false;
      bool parked = std::string_view(p->status()) == "receiving";
      bytes = p->memory_used();
      p->release_ref();
      return parked;
    }));
    eng.scheduler().kill(id);
    return bytes;
  };
  std::size_t first = footprint_when_waiting();
  CHECK(code->start_bytes.load() > 0);
  std::size_t second = footprint_when_waiting();
  std::size_t third = footprint_when_waiting();
  CHECK(second < first);  // no half-empty 4 KiB chunk at the end
  CHECK(third < first);
}

TEST_CASE("an arena's large blocks survive resizes and are all freed by reset") {
  // reset() replaces lua_close for states without finalizers, so it must
  // give back every large block, however Lua resized it.
  const std::size_t before = ::mallinfo2().uordblks;
  {
    arena a;
    std::vector<void*> blocks;
    for (int i = 0; i < 100; ++i) {
      auto* p = static_cast<unsigned char*>(a.allocate(16 * 1024, SIZE_MAX));
      REQUIRE(p);
      p[0] = static_cast<unsigned char>(i);
      blocks.push_back(p);
    }
    // Grow some (realloc may move them), shrink some to small, free a few.
    for (int i = 0; i < 100; i += 3) {
      auto* q = static_cast<unsigned char*>(a.resize(blocks[i], 16 * 1024, 48 * 1024, SIZE_MAX));
      REQUIRE(q);
      CHECK(q[0] == i);
      blocks[i] = q;
    }
    void* small = a.resize(blocks[1], 16 * 1024, 100, SIZE_MAX);
    REQUIRE(small);
    CHECK(static_cast<unsigned char*>(small)[0] == 1);
    a.release(blocks[2], 16 * 1024);
    CHECK(a.footprint() >= 97 * 16 * 1024);
    // (ASan's allocator does not feed glibc's mallinfo2: its leak check
    // covers reset() there.)
    if constexpr (!luad::runtime::asan_build)
      CHECK(::mallinfo2().uordblks - before >= 97 * 16 * 1024);
    a.reset();
    CHECK(a.footprint() == 0);
    if constexpr (!luad::runtime::asan_build) CHECK(::mallinfo2().uordblks - before < 64 * 1024);
  }
}
