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

bool huge_pages_wanted() {
  const char* v = std::getenv("LUAD_HUGE_PAGES");
  return !(v && std::strcmp(v, "0") == 0);
}

struct depot {
  std::mutex mu;
  std::array<std::vector<void*>, k_classes> warm, cold;
  char* cursor = nullptr;  // the unused rest of the newest region
  char* end = nullptr;
  std::size_t mapped = 0, carved = 0, warm_bytes = 0, cold_bytes = 0, trimmed = 0;
  bool huge = huge_pages_wanted();

  // Both under mu. A push that cannot grow its list (malloc itself is out of
  // memory) forgets the span: at most 16 KiB lost to reuse, never a crash.
  void push_warm(void* p, std::size_t c) noexcept {
    try {
      warm[c].push_back(p);
      warm_bytes += size_of(c);
    } catch (const std::bad_alloc&) {
    }
  }
  void push_cold(void* p, std::size_t c) noexcept {
    try {
      cold[c].push_back(p);
      cold_bytes += size_of(c);
    } catch (const std::bad_alloc&) {
    }
  }
  void* pop(std::size_t c) noexcept {
    if (!warm[c].empty()) {
      void* p = warm[c].back();
      warm[c].pop_back();
      warm_bytes -= size_of(c);
      return p;
    }
    if (!cold[c].empty()) {
      void* p = cold[c].back();
      cold[c].pop_back();
      cold_bytes -= size_of(c);
      return p;
    }
    return carve(size_of(c));
  }
  // A span from the newest region, mapping another when it is used up (its
  // tail goes to the warm lists as spans, largest first).
  void* carve(std::size_t bytes) noexcept {
    if (static_cast<std::size_t>(end - cursor) < bytes) {
      while (end - cursor >= static_cast<std::ptrdiff_t>(k_unit)) {
        std::size_t c = class_of(std::min<std::size_t>(end - cursor, k_max));
        push_warm(cursor, c);
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
      while (n[c]) d.push_warm(spans[c][--n[c]], c);
  }
};

cache& local() {
  thread_local cache c;
  return c;
}

}  // namespace

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
    while (t.n[c] > k_cache - k_batch) d.push_warm(t.spans[c][--t.n[c]], c);
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
        while (!d.warm[c].empty() && n < batch.size() && d.warm_bytes > keep && given < budget) {
          batch[n++] = {d.warm[c].back(), c};
          d.warm[c].pop_back();
          d.warm_bytes -= size_of(c);
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
      d.push_cold(batch[i].first, batch[i].second);
      d.trimmed += size_of(batch[i].second);
    }
  }
}

stats read() noexcept {
  depot& d = shared();
  std::lock_guard lock(d.mu);
  return {d.mapped, d.carved, d.warm_bytes, d.cold_bytes, d.trimmed};
}

}  // namespace luad::runtime::span_pool
