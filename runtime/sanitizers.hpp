// Which sanitizer this build runs under, for code that must step aside for it
// (block_pool) and for tests whose time bounds it stretches.
#pragma once

namespace luad::runtime {

/// True in a build under AddressSanitizer (gcc and clang spell it differently).
#if defined(__SANITIZE_ADDRESS__)
inline constexpr bool asan_build = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
inline constexpr bool asan_build = true;
#else
inline constexpr bool asan_build = false;
#endif
#else
inline constexpr bool asan_build = false;
#endif

}  // namespace luad::runtime
