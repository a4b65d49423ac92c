// Process heaps: bump allocation in chunks from span_pool, size classes up to
// 2 KiB; large blocks from malloc on an intrusive list.
#include "runtime/arena.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "runtime/span_pool.hpp"

namespace luad::runtime {

namespace {
constexpr std::size_t align_up(std::size_t n, std::size_t a) { return (n + a - 1) / a * a; }
}  // namespace

void arena::reset() noexcept {
  while (large_) {
    large_header* next = large_->next;
    std::free(large_);
    large_ = next;
  }
  while (chunks_) {
    chunk_header* next = chunks_->next;
    span_pool::give(chunks_, chunks_->size);
    chunks_ = next;
  }
  free_ = {};
  medium_ = nullptr;
  cursor_ = nullptr;
  footprint_.store(0, std::memory_order_relaxed);
}

bool arena::add_chunk(std::size_t size, std::size_t limit) noexcept {
  if (footprint() + size > limit) return false;
  auto* c = static_cast<chunk_header*>(span_pool::take(size));
  if (!c) return false;
  spill_room();
  c->next = chunks_;
  c->size = size;
  chunks_ = c;
  grow(size);
  cursor_ = reinterpret_cast<char*>(c) + align_up(sizeof(chunk_header), k_step);
  return true;
}

// The rest of the newest chunk, too small for the block that needs a new one,
// goes to the free lists.
void arena::spill_room() noexcept {
  std::size_t left = room();
  give_range(cursor_, left);
  cursor_ += left;
}

// Bytes no block uses go to the free lists as the largest blocks that fit
// (small ones unless the larger classes have their heads already).
void arena::give_range(char* from, std::size_t bytes) noexcept {
  while (bytes >= k_step) {
    std::size_t c = class_of(bytes);
    if (class_size(c) > bytes) --c;  // class_of rounds up; a spilled block rounds down
    if (!has_heads(c)) c = k_small - 1;
    auto* b = reinterpret_cast<free_block*>(from);
    b->next = head(c);
    head(c) = b;
    from += class_size(c);
    bytes -= class_size(c);
  }
}

void arena::reserve_first(std::size_t bytes, std::size_t limit) noexcept {
  if (chunks_ || bytes == 0) return;
  bytes = align_up(bytes + align_up(sizeof(chunk_header), k_step), span_pool::k_unit);
  add_chunk(bytes > span_pool::k_max ? span_pool::k_max : bytes, limit);
}

std::size_t arena::carved_bytes() const noexcept {
  std::size_t n = 0;
  for (const chunk_header* c = chunks_; c; c = c->next)
    n += c->size - align_up(sizeof(chunk_header), k_step);
  return chunks_ ? n - room() : 0;
}

void* arena::carve(std::size_t size, std::size_t limit) noexcept {
  if (room() < size && !add_chunk(k_chunk, limit)) return nullptr;
  void* p = cursor_;
  cursor_ += size;
  return p;
}

void arena::link(large_header* h) noexcept {
  h->prev = nullptr;
  h->next = large_;
  if (large_) large_->prev = h;
  large_ = h;
}

void arena::unlink(large_header* h) noexcept {
  (h->prev ? h->prev->next : large_) = h->next;
  if (h->next) h->next->prev = h->prev;
}

void* arena::allocate_large(std::size_t n, std::size_t limit) noexcept {
  if (footprint() + n > limit) return nullptr;
  auto* h = static_cast<large_header*>(std::malloc(sizeof(large_header) + n));
  if (!h) return nullptr;
  link(h);
  grow(n);
  return h + 1;
}

void* arena::allocate(std::size_t n, std::size_t limit) noexcept {
  static_assert(class_of(max_chunked) == k_classes - 1 && class_size(k_classes - 1) == max_chunked);
  static_assert(class_size(class_of(257)) == 384 && class_size(class_of(256)) == 256);
  if (n > max_chunked) return allocate_large(n, limit);
  std::size_t c = class_of(n);
  if (has_heads(c)) {
    if (free_block* b = head(c)) {
      head(c) = b->next;
      return b;
    }
  }
  return carve(class_size(c), limit);
}

void arena::release(void* p, std::size_t n) noexcept {
  if (n > max_chunked) {
    large_header* h = static_cast<large_header*>(p) - 1;
    unlink(h);
    shrink(n);
    std::free(h);
    return;
  }
  std::size_t c = class_of(n);
  if (!has_heads(c)) {
    // The first larger block freed holds the larger classes' heads at its
    // start; the rest of it goes to the free lists.
    constexpr std::size_t heads = (k_classes - k_small) * sizeof(free_block*);
    static_assert(heads % k_step == 0 && class_size(k_small) > heads);
    medium_ = static_cast<free_block**>(p);
    std::fill_n(medium_, k_classes - k_small, nullptr);
    give_range(static_cast<char*>(p) + heads, class_size(c) - heads);
    return;
  }
  auto* b = static_cast<free_block*>(p);
  b->next = head(c);
  head(c) = b;
}

void* arena::resize(void* p, std::size_t old, std::size_t n, std::size_t limit) noexcept {
  if (old > max_chunked && n > max_chunked) {
    if (n > old && footprint() + (n - old) > limit) return nullptr;
    large_header* h = static_cast<large_header*>(p) - 1;
    unlink(h);
    auto* q = static_cast<large_header*>(std::realloc(h, sizeof(large_header) + n));
    if (!q) {
      link(h);  // realloc failed: the old block stands
      return nullptr;
    }
    link(q);
    shrink(old);
    grow(n);
    return q + 1;
  }
  if (old <= max_chunked && n <= max_chunked && class_of(old) == class_of(n)) return p;
  void* q = allocate(n, limit);
  if (!q) return nullptr;
  std::memcpy(q, p, old < n ? old : n);
  release(p, old);
  return q;
}

}  // namespace luad::runtime
