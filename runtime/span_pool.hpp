// Where process heaps get their chunks: spans of 512 bytes to 16 KiB cut from
// 64 MiB regions that are mapped once, aligned to 2 MiB and
// advised for transparent huge pages, and recycled by size through a small
// cache per thread and a shared depot.
//
// Why not malloc: a burst of 100k fresh processes (~8 KB each) faulted in
// 200k 4 KiB pages of glibc's heaps, and on a VM a fault costs microseconds:
// a third of the timers benchmark's cpu went to them (docs/performance.md).
// From huge-page regions the same burst faults a few hundred 2 MiB pages, and
// spans freed by one burst are reused warm by the next.
//
// Freed spans stay mapped. trim() gives the kernel back (MADV_DONTNEED) the
// bytes the depot holds above 64 MiB, a bounded amount per call; the watchdog
// calls it (8 MiB per 50 ms while every worker is parked, 1 MiB a second
// otherwise), so a burst's memory goes back within seconds of its end while
// back-to-back bursts reuse it. LUAD_HUGE_PAGES=0 in
// the environment maps the regions without the huge-page advice.
//
// Under ASan spans come from malloc, so that a use after free is reported.
#pragma once

#include <cstddef>

namespace luad::runtime::span_pool {

/// Spans are whole units: a process's first chunk is sized to what its
/// script needs to 512 bytes, not to the page (pages would add 2 KB to an
/// idle process on average; whole KiB added 480 bytes to the idle receiver).
inline constexpr std::size_t k_unit = 512;
inline constexpr std::size_t k_page = 4096;
/// The largest span. Larger requests are the caller's business.
inline constexpr std::size_t k_max = 32 * k_unit;

/// Whether regions are advised for huge pages: yes unless the environment
/// says LUAD_HUGE_PAGES=0 (the fresh_memory benchmark maps as the pool does).
bool huge_pages_wanted() noexcept;

/// A span of `bytes` (a multiple of k_unit, at most k_max), aligned to k_unit;
/// or nullptr when no memory could be mapped. Thread-safe.
void* take(std::size_t bytes) noexcept;
/// Gives back a span from take(), with the size it was taken with.
void give(void* span, std::size_t bytes) noexcept;

/// Hands back to the kernel free spans the depot holds beyond `keep` bytes,
/// at most `budget` bytes this call (spans cached by a thread are not
/// counted): the whole pages of each run of adjacent spans (a page shared
/// with a span in use stays). The spans stay usable: a later take() faults
/// them in again. Returns the bytes of spans moved to the cold lists.
std::size_t trim(std::size_t keep, std::size_t budget) noexcept;

struct stats {
  std::size_t mapped = 0;      ///< bytes of regions mapped so far
  std::size_t carved = 0;      ///< bytes of spans cut from them so far
  std::size_t depot_warm = 0;  ///< free bytes in the depot, still backed
  std::size_t depot_cold = 0;  ///< free bytes in the depot given back by trim()
  std::size_t trimmed = 0;     ///< bytes trim() has given back so far, in all
};
stats read() noexcept;
/// Bytes of spans in use, near enough: carved less what the depot holds
/// (spans in the threads' small caches count as in use).
inline std::size_t in_use(const stats& s) { return s.carved - s.depot_warm - s.depot_cold; }

/// What the watchdog keeps warm, and gives back per call: per 50 ms while
/// every worker is parked, per second otherwise.
inline constexpr std::size_t k_keep = std::size_t{64} << 20;
inline constexpr std::size_t k_trim_idle = std::size_t{8} << 20;
inline constexpr std::size_t k_trim_busy = std::size_t{1} << 20;

}  // namespace luad::runtime::span_pool
