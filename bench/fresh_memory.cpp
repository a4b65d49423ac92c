// fresh_memory: what the host charges for memory a process touches for the
// first time, against a fresh mapping of pages the kernel has just taken back
// (both fault and zero each page; only the host's backing differs). On the
// VM our figures come from, the first is ~20× slower, and the timers benchmark makes ~730 MB of Lua
// states at once, so this figure says how much of timers' time is the host's, not luad's
// (docs/performance.md, "Fresh memory").
#include <sys/mman.h>

#include <cstddef>

#include "bench/benchmarks.hpp"
#include "runtime/span_pool.hpp"

namespace luad::bench {

namespace {

constexpr std::size_t k_bytes = std::size_t{256} << 20;
constexpr std::size_t k_page = 4096;

// Maps k_bytes advised as the span pool advises its regions (huge pages
// unless LUAD_HUGE_PAGES=0), or nullptr.
char* map_like_span_pool() {
  void* p = ::mmap(nullptr, k_bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) return nullptr;
  if (luad::runtime::span_pool::huge_pages_wanted()) ::madvise(p, k_bytes, MADV_HUGEPAGE);
  return static_cast<char*>(p);
}

// GB/s of faulting in [p, p + k_bytes): one byte written per page.
double touch_rate(char* p) {
  auto t0 = wall_clock::now();
  for (std::size_t o = 0; o < k_bytes; o += k_page) p[o] = 1;
  return static_cast<double>(k_bytes) / seconds_since(t0) / 1e9;
}

}  // namespace

void bench_fresh_memory(const options&) {
  char* p = map_like_span_pool();
  if (!p) {
    note("fresh_memory: mmap failed");
    return;
  }
  double fresh = touch_rate(p);  // pages this process never had
  ::munmap(p, k_bytes);
  char* q = map_like_span_pool();  // most likely the pages just unmapped
  if (!q) {
    note("fresh_memory: mmap failed");
    return;
  }
  double remapped = touch_rate(q);
  ::munmap(q, k_bytes);
  report("fresh_memory_first_touch", fresh, "GB/s");
  report("fresh_memory_remapped", remapped, "GB/s");
  report("fresh_memory_remapped_ratio", remapped / fresh, "x");
  // What the first touch of one timers process's heap costs (7.3 KB: the
  // span pool's bytes per process in timers_100k_x10).
  report("fresh_memory_per_timer_state", 7.3e3 / (fresh * 1e9) * 1e6, "us");
  // The same for BEAM's 2.6 KB per process (erl's erts_debug:size, docs/performance.md).
  report("fresh_memory_per_beam_process", 2.6e3 / (fresh * 1e9) * 1e6, "us");
}

}  // namespace luad::bench
