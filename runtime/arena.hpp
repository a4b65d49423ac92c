// A process's Lua heap: small blocks carved from chunks with per-size free
// lists, large blocks from malloc, each on a list. The whole heap dies with
// the process: reset() frees the chunks and the large blocks without visiting
// a Lua object, so a state with no finalizer need not be closed object by object.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>

namespace luad::runtime {

/// Not thread-safe: a process's heap is used by one worker at a time.
class arena {
 public:
  /// Blocks up to this size come from chunks; larger ones from malloc.
  static constexpr std::size_t max_small = 256;

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
  /// small blocks, clamped to [1 KiB, 64 KiB]; later chunks are 4 KiB. 0
  /// (nothing known) leaves the first chunk at 4 KiB too.
  void reserve_first(std::size_t bytes, std::size_t limit) noexcept;
  /// Bytes of small blocks carved from chunks so far (free ones included;
  /// chunk headers not).
  std::size_t small_bytes() const noexcept;
  /// Bytes held from the system: chunks plus large blocks. Any thread may read
  /// it (process.info); only the owner changes it.
  std::size_t footprint() const { return footprint_.load(std::memory_order_relaxed); }

 private:
  static constexpr std::size_t k_step = 16;
  static constexpr std::size_t k_classes = max_small / k_step;
  static constexpr std::size_t k_chunk = 4096;
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
  void* carve(std::size_t size, std::size_t limit) noexcept;
  // Bytes left in the newest chunk (its end is not kept: the process object
  // is counted in bytes).
  std::size_t room() const noexcept {
    return chunks_ ? static_cast<std::size_t>(reinterpret_cast<char*>(chunks_) + chunks_->size -
                                              cursor_)
                   : 0;
  }

  std::array<free_block*, k_classes> free_{};
  char* cursor_ = nullptr;
  chunk_header* chunks_ = nullptr;
  large_header* large_ = nullptr;
  std::atomic<std::size_t> footprint_{0};
  void grow(std::size_t n) { footprint_.store(footprint() + n, std::memory_order_relaxed); }
  void shrink(std::size_t n) { footprint_.store(footprint() - n, std::memory_order_relaxed); }
};

}  // namespace luad::runtime
