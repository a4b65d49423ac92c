// UTF-8 validation and repair (utf8.hpp).
#include "runtime/utf8.hpp"

#include <cstdint>
#include <cstring>

namespace luad::runtime {

namespace {

// Index of the first byte at or after `i` that is not ASCII (or s.size()).
std::size_t skip_ascii(std::string_view s, std::size_t i) noexcept {
  constexpr std::uint64_t high = 0x8080808080808080ull;
  while (i + 8 <= s.size()) {
    std::uint64_t word;
    std::memcpy(&word, s.data() + i, 8);
    if (word & high) break;
    i += 8;
  }
  while (i < s.size() && static_cast<unsigned char>(s[i]) < 0x80) ++i;
  return i;
}

}  // namespace

std::size_t utf8_sequence(std::string_view s, std::size_t i) noexcept {
  auto at = [&](std::size_t k) { return k < s.size() ? static_cast<unsigned char>(s[k]) : 0u; };
  auto cont = [&](std::size_t k) { return (at(k) & 0xC0u) == 0x80u; };
  unsigned c = at(i);
  if (i >= s.size()) return 0;
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) return cont(i + 1) ? 2 : 0;  // C0, C1: overlong
  if (c >= 0xE0 && c <= 0xEF) {
    // E0 80..9F: overlong; ED A0..BF: surrogates.
    unsigned lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
    return at(i + 1) >= lo && at(i + 1) <= hi && cont(i + 2) ? 3 : 0;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    // F0 80..8F: overlong; F4 90..BF: past U+10FFFF.
    unsigned lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
    return at(i + 1) >= lo && at(i + 1) <= hi && cont(i + 2) && cont(i + 3) ? 4 : 0;
  }
  return 0;  // 80..C1, F5..FF
}

bool valid_utf8(std::string_view s) noexcept {
  std::size_t i = skip_ascii(s, 0);
  while (i < s.size()) {
    std::size_t n = utf8_sequence(s, i);
    if (n == 0) return false;
    i = skip_ascii(s, i + n);
  }
  return true;
}

std::string_view utf8_prefix(std::string_view s, std::size_t max) noexcept {
  if (s.size() <= max) return s;
  std::size_t n = max;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  return s.substr(0, n);
}

std::string utf8_repaired(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 8);
  std::size_t i = 0;
  while (i < s.size()) {
    std::size_t j = skip_ascii(s, i);
    out.append(s.data() + i, j - i);
    if (j >= s.size()) break;
    std::size_t n = utf8_sequence(s, j);
    if (n == 0) {
      out.append("\xEF\xBF\xBD");  // U+FFFD
      n = 1;
    } else {
      out.append(s.data() + j, n);
    }
    i = j + n;
  }
  return out;
}

}  // namespace luad::runtime
