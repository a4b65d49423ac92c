// Fixed-size blocks for objects that one thread makes and another frees: a
// process is made by the thread that spawns it (the socket's, a bench's, any
// worker's) and freed by the worker that ran it last. glibc frees a block made
// by another thread into that thread's arena under the arena's lock; with one
// thread spawning and two workers freeing 400k processes a second, a fifth of
// spawn_exit's time went to futex calls on that lock (perf, docs/performance.md).
// Here each thread keeps one magazine of free blocks and trades a full or an
// empty one with a shared depot: one lock per k_magazine blocks.
//
// Under ASan the pool is bypassed, so that a block used after its free is
// still reported where it happens; TSan sees the pool's hand-offs (a mutex).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <new>
#include <vector>

#include "runtime/sanitizers.hpp"

namespace luad::runtime {

inline constexpr bool k_pool_blocks = !asan_build;

/// Blocks of `Size` bytes from malloc (aligned for any object), handed
/// between threads. A block from take() may also go to std::free, and a block
/// from std::malloc(Size) to give(). Thread-safe; a thread's magazine is freed
/// when the thread ends. The depot keeps at most k_depot_max full magazines
/// (the rest is freed), so a burst of spawns does not stay reserved.
template <std::size_t Size>
class block_pool {
 public:
  /// A block, or nullptr when malloc has none.
  static void* take() noexcept {
    if constexpr (!k_pool_blocks) return std::malloc(Size);
    magazine*& mine = local().loaded;
    if (!mine || mine->n == 0) {
      depot& d = shared();
      // A thread that makes more than comes back (a spawner whose children
      // have not ended yet) finds the depot dry: no lock then.
      if (d.full_count.load(std::memory_order_relaxed) == 0) return std::malloc(Size);
      std::lock_guard lock(d.mu);
      if (d.full.empty()) return std::malloc(Size);
      if (mine && d.empty.size() < k_depot_max) {
        d.empty.push_back(mine);  // (within the capacity reserved: no allocation)
      } else {
        delete mine;
      }
      mine = d.full.back();
      d.full.pop_back();
      d.full_count.store(d.full.size(), std::memory_order_relaxed);
    }
    return mine->blocks[--mine->n];
  }

  /// Blocks waiting in the depot (not in any thread's magazine): for tests.
  static std::size_t depot_blocks() {
    depot& d = shared();
    std::lock_guard lock(d.mu);
    std::size_t n = 0;
    for (const magazine* m : d.full) n += m->n;
    return n;
  }
  static constexpr std::size_t k_magazine = 64;
  static constexpr std::size_t k_depot_max = 64;  // 4,096 blocks kept at most

  static void give(void* p) noexcept {
    if constexpr (!k_pool_blocks) return std::free(p);
    magazine*& mine = local().loaded;
    if (mine && mine->n == k_magazine) {
      depot& d = shared();
      bool kept = false;
      {
        std::lock_guard lock(d.mu);
        if (d.full.size() < k_depot_max) {
          d.full.push_back(mine);  // (within the capacity reserved)
          d.full_count.store(d.full.size(), std::memory_order_relaxed);
          kept = true;
          mine = nullptr;
          if (!d.empty.empty()) {
            mine = d.empty.back();
            d.empty.pop_back();
          }
        }
      }
      if (!kept) release(*mine);  // the depot is full: back to malloc, outside the lock
    }
    if (!mine) mine = new (std::nothrow) magazine;
    if (!mine) return std::free(p);
    mine->blocks[mine->n++] = p;
  }

 private:
  struct magazine {
    std::size_t n = 0;
    void* blocks[k_magazine];
  };
  struct depot {
    depot() {
      full.reserve(k_depot_max);
      empty.reserve(k_depot_max);
    }
    std::mutex mu;
    std::vector<magazine*> full, empty;
    std::atomic<std::size_t> full_count{0};  // full.size(), read without the lock
  };
  struct cache {
    magazine* loaded = nullptr;
    ~cache() {
      if (!loaded) return;
      release(*loaded);
      delete loaded;
    }
  };
  static void release(magazine& m) noexcept {
    while (m.n) std::free(m.blocks[--m.n]);
  }
  static depot& shared() {
    static depot* d = new depot;  // never destroyed: threads may end after main's statics
    return *d;
  }
  static cache& local() {
    thread_local cache c;
    return c;
  }
};

/// An allocator for node containers (std::unordered_map's nodes) whose nodes
/// one thread inserts and another erases: single nodes from block_pool,
/// arrays (the bucket table) from operator new.
template <class T>
struct pooled_allocator {
  using value_type = T;
  pooled_allocator() = default;
  template <class U>
  pooled_allocator(const pooled_allocator<U>&) noexcept {}
  T* allocate(std::size_t n) {
    static_assert(alignof(T) <= alignof(std::max_align_t));
    if (n != 1) return static_cast<T*>(::operator new(n * sizeof(T)));
    if (void* block = block_pool<sizeof(T)>::take()) return static_cast<T*>(block);
    throw std::bad_alloc();
  }
  void deallocate(T* p, std::size_t n) noexcept {
    if (n == 1) return block_pool<sizeof(T)>::give(p);
    ::operator delete(p);
  }
  template <class U>
  bool operator==(const pooled_allocator<U>&) const noexcept {
    return true;
  }
};

}  // namespace luad::runtime
