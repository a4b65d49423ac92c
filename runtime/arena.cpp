// Process heaps: bump allocation in 4 KiB chunks, 16-byte size classes.
#include "runtime/arena.hpp"

#include <cstdlib>
#include <cstring>

namespace luad::runtime {

namespace {
constexpr std::size_t align_up(std::size_t n, std::size_t a) { return (n + a - 1) / a * a; }
}  // namespace

void arena::reset() noexcept {
  while (chunks_) {
    chunk_header* next = chunks_->next;
    std::free(chunks_);
    chunks_ = next;
  }
  free_ = {};
  cursor_ = end_ = nullptr;
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
  end_ = reinterpret_cast<char*>(c) + size;
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
  return chunks_ ? n - static_cast<std::size_t>(end_ - cursor_) : 0;
}

void* arena::carve(std::size_t size, std::size_t limit) noexcept {
  if (static_cast<std::size_t>(end_ - cursor_) < size && !add_chunk(k_chunk, limit)) return nullptr;
  void* p = cursor_;
  cursor_ += size;
  return p;
}

void* arena::allocate(std::size_t n, std::size_t limit) noexcept {
  if (n > max_small) {
    if (footprint() + n > limit) return nullptr;
    void* p = std::malloc(n);
    if (p) grow(n);
    return p;
  }
  std::size_t c = (n - 1) / k_step;
  if (free_block* b = free_[c]) {
    free_[c] = b->next;
    return b;
  }
  return carve((c + 1) * k_step, limit);
}

void arena::release(void* p, std::size_t n) noexcept {
  if (n > max_small) {
    shrink(n);
    std::free(p);
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
    void* q = std::realloc(p, n);
    if (q) {
      shrink(old);
      grow(n);
    }
    return q;
  }
  if (old <= max_small && n <= max_small && (old - 1) / k_step == (n - 1) / k_step) return p;
  void* q = allocate(n, limit);
  if (!q) return nullptr;
  std::memcpy(q, p, old < n ? old : n);
  release(p, old);
  return q;
}

}  // namespace luad::runtime
