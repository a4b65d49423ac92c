// Spans for process heaps: huge-page regions, per-thread caches, a depot and
// its trim (the why is in span_pool.hpp).
#include "runtime/span_pool.hpp"

#include <sys/mman.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <vector>

#include "runtime/block_pool.hpp"

namespace luad::runtime::span_pool {

namespace {

constexpr std::size_t k_classes = k_max / k_unit;
constexpr std::size_t k_region = std::size_t{64} << 20;
constexpr std::size_t k_huge = std::size_t{2} << 20;
constexpr std::size_t k_cache = 16;  // spans of each size a thread keeps
constexpr std::size_t k_batch = 8;   // moved between a thread and the depot at once

constexpr std::size_t class_of(std::size_t bytes) { return bytes / k_unit - 1; }
constexpr std::size_t size_of(std::size_t c) { return (c + 1) * k_unit; }

// Free spans by size, and their bytes in all. Under the depot's lock.
struct shelf {
  std::array<std::vector<void*>, k_classes> lists;
  std::size_t bytes = 0;

  // A push that cannot grow its list (malloc itself is out of memory)
  // forgets the span: at most 16 KiB lost to reuse, never a crash.
  void push(void* p, std::size_t c) noexcept {
    try {
      lists[c].push_back(p);
      bytes += size_of(c);
    } catch (const std::bad_alloc&) {
    }
  }
  void* pop(std::size_t c) noexcept {
    if (lists[c].empty()) return nullptr;
    void* p = lists[c].back();
    lists[c].pop_back();
    bytes -= size_of(c);
    return p;
  }
};

struct depot {
  std::mutex mu;
  shelf warm, cold;        // still backed / given back by trim()
  char* cursor = nullptr;  // the unused rest of the newest region
  char* end = nullptr;
  std::size_t mapped = 0, carved = 0, trimmed = 0;
  bool huge = huge_pages_wanted();

  // A span of the size asked, warm or trimmed; else one cut from a larger
  // warm span; else fresh memory. A trimmed span of the right size goes
  // before a cut: were cuts first, workloads that alternate with trims
  // between them would cut the other's warm spans every round while their
  // own trimmed ones wait, and the regions mapped (and the lists) would
  // grow each round. So a size is cut for only while it has no spans of
  // its own, up to the most of it in use at once.
  void* pop(std::size_t c) noexcept {
    if (void* p = warm.pop(c)) return p;
    if (void* p = cold.pop(c)) return p;
    if (void* p = split_warm(c)) return p;
    return carve(size_of(c));
  }
  // A warm span of the nearest larger size, cut in two: the front is taken,
  // the rest stays warm at its own size. What one script's burst left warm
  // then serves the next script's sizes: the timers benchmark's second phase
  // (another script, another first chunk) found 685 MB warm in the wrong
  // sizes and faulted 1.17 GB fresh. Spans are never joined again; what
  // stays unused goes to the kernel by trim() like any other.
  void* split_warm(std::size_t c) noexcept {
    for (std::size_t big = c + 1; big < k_classes; ++big) {
      if (warm.lists[big].empty()) continue;
      auto* p = static_cast<char*>(warm.pop(big));
      warm.push(p + size_of(c), big - c - 1);  // the rest: (big - c) units
      return p;
    }
    return nullptr;
  }
  // A span from the newest region, mapping another when it is used up (its
  // tail goes to the warm lists as spans, largest first).
  void* carve(std::size_t bytes) noexcept {
    if (static_cast<std::size_t>(end - cursor) < bytes) {
      while (end - cursor >= static_cast<std::ptrdiff_t>(k_unit)) {
        std::size_t c = class_of(std::min<std::size_t>(end - cursor, k_max));
        warm.push(cursor, c);
        cursor += size_of(c);
        carved += size_of(c);
      }
      if (!map_region()) return nullptr;
    }
    void* p = cursor;
    cursor += bytes;
    carved += bytes;
    return p;
  }
  bool map_region() noexcept {
    void* raw = ::mmap(nullptr, k_region + k_huge, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (raw == MAP_FAILED) return false;
    // Keep the 2 MiB-aligned 64 MiB inside; unmap the ends.
    auto base = reinterpret_cast<std::uintptr_t>(raw);
    std::uintptr_t start = (base + k_huge - 1) / k_huge * k_huge;
    if (start > base) ::munmap(raw, start - base);
    std::uintptr_t tail = base + k_region + k_huge - (start + k_region);
    if (tail) ::munmap(reinterpret_cast<void*>(start + k_region), tail);
    cursor = reinterpret_cast<char*>(start);
    end = cursor + k_region;
    if (huge) ::madvise(cursor, k_region, MADV_HUGEPAGE);  // advice: failure is fine
    mapped += k_region;
    return true;
  }
};

depot& shared() {
  static depot* d = new depot;  // never destroyed: threads may end after main's statics
  return *d;
}

struct cache {
  std::array<std::array<void*, k_cache>, k_classes> spans{};
  std::array<std::size_t, k_classes> n{};
  ~cache() {
    depot& d = shared();
    std::lock_guard lock(d.mu);
    for (std::size_t c = 0; c < k_classes; ++c)
      while (n[c]) d.warm.push(spans[c][--n[c]], c);
  }
};

cache& local() {
  thread_local cache c;
  return c;
}

}  // namespace

bool huge_pages_wanted() noexcept {
  const char* v = std::getenv("LUAD_HUGE_PAGES");
  return !(v && std::strcmp(v, "0") == 0);
}

void* take(std::size_t bytes) noexcept {
  if constexpr (!k_pool_blocks) return std::malloc(bytes);
  const std::size_t c = class_of(bytes);
  cache& t = local();
  if (t.n[c] == 0) {
    depot& d = shared();
    std::lock_guard lock(d.mu);
    while (t.n[c] < k_batch) {
      void* p = d.pop(c);
      if (!p) break;
      t.spans[c][t.n[c]++] = p;
    }
    if (t.n[c] == 0) return nullptr;
  }
  return t.spans[c][--t.n[c]];
}

void give(void* span, std::size_t bytes) noexcept {
  if constexpr (!k_pool_blocks) return std::free(span);
  const std::size_t c = class_of(bytes);
  cache& t = local();
  if (t.n[c] == k_cache) {
    depot& d = shared();
    std::lock_guard lock(d.mu);
    while (t.n[c] > k_cache - k_batch) d.warm.push(t.spans[c][--t.n[c]], c);
  }
  t.spans[c][t.n[c]++] = span;
}

std::size_t trim(std::size_t keep, std::size_t budget) noexcept {
  if constexpr (!k_pool_blocks) return 0;
  depot& d = shared();
  std::size_t given = 0;
  // In batches, so that takers wait for the lock at most one batch's
  // bookkeeping and never for a system call.
  std::array<std::pair<void*, std::size_t>, 256> batch;
  for (;;) {
    std::size_t n = 0;
    {
      std::lock_guard lock(d.mu);
      for (std::size_t c = k_classes; c-- > 0 && n < batch.size();) {
        while (!d.warm.lists[c].empty() && n < batch.size() && d.warm.bytes > keep &&
               given < budget) {
          batch[n++] = {d.warm.pop(c), c};
          given += size_of(c);
        }
      }
    }
    if (n == 0) return given;
    // One call per run of adjacent spans (a burst's spans were cut one after
    // another, and each call costs about as much as the pages it drops), for
    // the whole pages inside the run.
    std::sort(batch.begin(), batch.begin() + n);
    for (std::size_t i = 0; i < n;) {
      auto start = reinterpret_cast<std::uintptr_t>(batch[i].first);
      std::uintptr_t end = start + size_of(batch[i].second);
      for (++i; i < n && reinterpret_cast<std::uintptr_t>(batch[i].first) == end; ++i)
        end += size_of(batch[i].second);
      start = (start + k_page - 1) / k_page * k_page;
      end = end / k_page * k_page;
      if (end > start) ::madvise(reinterpret_cast<void*>(start), end - start, MADV_DONTNEED);
    }
    std::lock_guard lock(d.mu);
    for (std::size_t i = 0; i < n; ++i) {
      d.cold.push(batch[i].first, batch[i].second);
      d.trimmed += size_of(batch[i].second);
    }
  }
}

stats read() noexcept {
  depot& d = shared();
  std::lock_guard lock(d.mu);
  return {d.mapped, d.carved, d.warm.bytes, d.cold.bytes, d.trimmed};
}

}  // namespace luad::runtime::span_pool
