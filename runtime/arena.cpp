// Process heaps: bump allocation in 4 KiB chunks, 16-byte size classes;
// large blocks from malloc on an intrusive list.
#include "runtime/arena.hpp"

#include <cstdlib>
#include <cstring>

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
    std::free(chunks_);
    chunks_ = next;
  }
  free_ = {};
  cursor_ = nullptr;
  footprint_.store(0, std::memory_order_relaxed);
}

bool arena::add_chunk(std::size_t size, std::size_t limit) noexcept {
  if (footprint() + size > limit) return false;
  auto* c = static_cast<chunk_header*>(std::malloc(size));
  if (!c) return false;
  c->next = chunks_;
  c->size = size;
  chunks_ = c;
  grow(size);
  // The rest of the old chunk is left unused: at most one block's worth.
  cursor_ = reinterpret_cast<char*>(c) + align_up(sizeof(chunk_header), k_step);
  return true;
}

void arena::reserve_first(std::size_t bytes, std::size_t limit) noexcept {
  if (chunks_ || bytes == 0) return;
  constexpr std::size_t lo = 1024, hi = 64 * 1024;
  bytes = align_up(bytes + align_up(sizeof(chunk_header), k_step), 64);
  add_chunk(bytes < lo ? lo : bytes > hi ? hi : bytes, limit);
}

std::size_t arena::small_bytes() const noexcept {
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
  if (n > max_small) return allocate_large(n, limit);
  std::size_t c = (n - 1) / k_step;
  if (free_block* b = free_[c]) {
    free_[c] = b->next;
    return b;
  }
  return carve((c + 1) * k_step, limit);
}

void arena::release(void* p, std::size_t n) noexcept {
  if (n > max_small) {
    large_header* h = static_cast<large_header*>(p) - 1;
    unlink(h);
    shrink(n);
    std::free(h);
    return;
  }
  std::size_t c = (n - 1) / k_step;
  auto* b = static_cast<free_block*>(p);
  b->next = free_[c];
  free_[c] = b;
}

void* arena::resize(void* p, std::size_t old, std::size_t n, std::size_t limit) noexcept {
  if (old > max_small && n > max_small) {
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
  if (old <= max_small && n <= max_small && (old - 1) / k_step == (n - 1) / k_step) return p;
  void* q = allocate(n, limit);
  if (!q) return nullptr;
  std::memcpy(q, p, old < n ? old : n);
  release(p, old);
  return q;
}

}  // namespace luad::runtime
