// A process's Lua heap: blocks up to 2 KiB carved from chunks (spans of whole
// 512-byte units from span_pool) with a free list per size class, larger blocks from
// malloc, each on a list. The whole heap dies with the process: reset() gives
// back the chunks and frees the large blocks without visiting a Lua object,
// so a state with no finalizer need not be closed object by object.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>

namespace luad::runtime {

/// Not thread-safe: a process's heap is used by one worker at a time.
class arena {
 public:
  /// Blocks up to this size come from chunks; larger ones from malloc. It
  /// covers what every state holds: the global state (~1.6 KB), the stack,
  /// the string table.
  static constexpr std::size_t max_chunked = 2048;

  arena() = default;
  ~arena() { reset(); }
  arena(const arena&) = delete;
  arena& operator=(const arena&) = delete;

  /// Returns a block of `n` bytes (n > 0), or nullptr when taking more memory
  /// from the system would pass `limit` bytes of footprint.
  void* allocate(std::size_t n, std::size_t limit) noexcept;
  /// Gives back a block obtained for exactly `n` bytes.
  void release(void* p, std::size_t n) noexcept;
  /// Lua's realloc for a block obtained for `old` bytes; nullptr on failure,
  /// leaving `p` valid.
  void* resize(void* p, std::size_t old, std::size_t n, std::size_t limit) noexcept;
  /// Frees everything at once: after lua_close, or instead of it.
  void reset() noexcept;
  /// Sizes the first chunk (call before the first allocation): `bytes` of
  /// blocks, rounded up to 512 bytes, at most 16 KiB; later chunks are
  /// 4 KiB. 0 (nothing known) leaves the first chunk at 4 KiB too.
  void reserve_first(std::size_t bytes, std::size_t limit) noexcept;
  /// Bytes of blocks carved from chunks so far (free ones included; chunk
  /// headers not).
  std::size_t carved_bytes() const noexcept;
  /// Bytes held from the system: chunks plus large blocks. Any thread may read
  /// it (process.info); only the owner changes it.
  std::size_t footprint() const { return footprint_.load(std::memory_order_relaxed); }

 private:
  // Classes: 16-byte steps up to 256, then 128-byte steps up to 2048.
  static constexpr std::size_t k_step = 16;
  static constexpr std::size_t k_fine = 256;
  static constexpr std::size_t k_coarse_step = 128;
  static constexpr std::size_t k_small = k_fine / k_step;  // classes up to 256 bytes
  static constexpr std::size_t k_classes = k_small + (max_chunked - k_fine) / k_coarse_step;
  static constexpr std::size_t k_chunk = 4096;
  static constexpr std::size_t class_of(std::size_t n) {
    return n <= k_fine ? (n - 1) / k_step : k_small + (n - k_fine - 1) / k_coarse_step;
  }
  static constexpr std::size_t class_size(std::size_t c) {
    return c < k_small ? (c + 1) * k_step : k_fine + (c + 1 - k_small) * k_coarse_step;
  }
  struct free_block {
    free_block* next;
  };
  struct chunk_header {
    chunk_header* next;
    std::size_t size;  // of the whole chunk, header included
  };
  // Before each large block (16 bytes: the block stays max-aligned).
  struct large_header {
    large_header* prev;
    large_header* next;
  };
  static_assert(sizeof(large_header) % alignof(std::max_align_t) == 0);
  void link(large_header* h) noexcept;
  void unlink(large_header* h) noexcept;
  void* allocate_large(std::size_t n, std::size_t limit) noexcept;
  bool add_chunk(std::size_t size, std::size_t limit) noexcept;
  void spill_room() noexcept;
  void give_range(char* from, std::size_t bytes) noexcept;
  void* carve(std::size_t size, std::size_t limit) noexcept;
  // Bytes left in the newest chunk (its end is not kept: the process object
  // is counted in bytes). Always a multiple of k_step.
  std::size_t room() const noexcept {
    return chunks_ ? static_cast<std::size_t>(reinterpret_cast<char*>(chunks_) + chunks_->size -
                                              cursor_)
                   : 0;
  }

  // The free list of a class: small ones here, larger ones in medium_ (the
  // start of the first block above 256 bytes freed, so that the process
  // object does not carry 14 heads that most processes never use).
  free_block*& head(std::size_t c) noexcept {
    return c < k_small ? free_[c] : medium_[c - k_small];
  }
  bool has_heads(std::size_t c) const noexcept { return c < k_small || medium_; }

  std::array<free_block*, k_small> free_{};
  free_block** medium_ = nullptr;
  char* cursor_ = nullptr;
  chunk_header* chunks_ = nullptr;
  large_header* large_ = nullptr;
  std::atomic<std::size_t> footprint_{0};
  void grow(std::size_t n) { footprint_.store(footprint() + n, std::memory_order_relaxed); }
  void shrink(std::size_t n) { footprint_.store(footprint() - n, std::memory_order_relaxed); }
};

}  // namespace luad::runtime
