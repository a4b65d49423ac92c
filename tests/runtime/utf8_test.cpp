// runtime/utf8: the validator against the definition (every 1- and 2-byte
// string, the edges of every sequence length), the ASCII fast path at every
// offset, and repair.
#include "runtime/utf8.hpp"

#include <doctest/doctest.h>

#include <cstdint>
#include <string>

using luad::runtime::utf8_repaired;
using luad::runtime::utf8_sequence;
using luad::runtime::valid_utf8;

namespace {

// The encoding of code point `cp` in `n` bytes (n may be too many: an overlong).
std::string encode(std::uint32_t cp, int n) {
  if (n == 1) return std::string(1, static_cast<char>(cp));
  std::string out(static_cast<std::size_t>(n), '\0');
  for (int i = n - 1; i > 0; --i) {
    out[static_cast<std::size_t>(i)] = static_cast<char>(0x80 | (cp & 0x3F));
    cp >>= 6;
  }
  out[0] = static_cast<char>((0xF00u >> n) | cp);  // 110xxxxx, 1110xxxx, 11110xxx
  return out;
}

}  // namespace

TEST_CASE("utf8: code points are valid in their shortest form only") {
  for (std::uint32_t cp : {0u, 0x41u, 0x7Fu}) CHECK(valid_utf8(encode(cp, 1)));
  for (std::uint32_t cp : {0x80u, 0x7FFu}) CHECK(valid_utf8(encode(cp, 2)));
  for (std::uint32_t cp : {0x800u, 0xD7FFu, 0xE000u, 0xFFFDu, 0xFFFFu})
    CHECK(valid_utf8(encode(cp, 3)));
  for (std::uint32_t cp : {0x10000u, 0x10FFFFu}) CHECK(valid_utf8(encode(cp, 4)));
  // Overlong forms of '/', U+07FF and U+FFFF.
  CHECK_FALSE(valid_utf8("\xC0\xAF"));
  CHECK_FALSE(valid_utf8("\xC1\xBF"));
  CHECK_FALSE(valid_utf8(encode(0x2F, 3)));
  CHECK_FALSE(valid_utf8(encode(0x7FF, 3)));
  CHECK_FALSE(valid_utf8(encode(0xFFFF, 4)));
  // Surrogates, alone or paired (CESU-8), and past U+10FFFF.
  CHECK_FALSE(valid_utf8(encode(0xD800, 3)));
  CHECK_FALSE(valid_utf8(encode(0xDFFF, 3)));
  CHECK_FALSE(valid_utf8(encode(0xD83D, 3) + encode(0xDE00, 3)));
  CHECK_FALSE(valid_utf8(encode(0x110000, 4)));
  CHECK_FALSE(valid_utf8("\xF5\x80\x80\x80"));
  CHECK_FALSE(valid_utf8("\xFF"));
  CHECK_FALSE(valid_utf8("\xFE\xFF"));
  // Truncated sequences and stray continuation bytes.
  CHECK_FALSE(valid_utf8("\xE2\x82"));
  CHECK_FALSE(valid_utf8("\xF0\x9F\x98"));
  CHECK_FALSE(valid_utf8("\x80"));
  CHECK(valid_utf8(std::string("a\0b", 3)));  // NUL is a character
  CHECK(valid_utf8(""));
}

TEST_CASE("utf8: every two-byte string agrees with the definition") {
  for (unsigned a = 0; a < 256; ++a) {
    for (unsigned b = 0; b < 256; ++b) {
      std::string s{static_cast<char>(a), static_cast<char>(b)};
      bool expected = (a < 0x80 && b < 0x80) || (a >= 0xC2 && a <= 0xDF && (b & 0xC0) == 0x80);
      REQUIRE_MESSAGE(valid_utf8(s) == expected, a << " " << b);
    }
  }
}

TEST_CASE("utf8: one bad byte is found at any offset, past the eight-byte fast path") {
  for (std::size_t len = 1; len < 40; ++len) {
    for (std::size_t at = 0; at < len; ++at) {
      std::string s(len, 'a');
      CHECK(valid_utf8(s));
      s[at] = '\xFF';
      REQUIRE_MESSAGE(!valid_utf8(s), len << " " << at);
      s[at] = '\xC3';  // a lead byte cut off by the end or followed by ASCII
      REQUIRE_MESSAGE(!valid_utf8(s), len << " " << at);
    }
  }
  CHECK(utf8_sequence("\xE2\x82\xAC", 0) == 3);
  CHECK(utf8_sequence("ab", 2) == 0);  // past the end
}

TEST_CASE("utf8: repair replaces each bad byte with U+FFFD and keeps the rest") {
  CHECK(utf8_repaired("ok") == "ok");
  CHECK(utf8_repaired("a\xFF"
                      "b") ==
        "a\xEF\xBF\xBD"
        "b");
  CHECK(utf8_repaired("\xC0\xAF") == "\xEF\xBF\xBD\xEF\xBF\xBD");
  CHECK(utf8_repaired("\xE2\x82\xAC\xED\xA0\x80") ==
        "\xE2\x82\xAC\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
  CHECK(valid_utf8(utf8_repaired("\xF4\x90\x80\x80 \xE2\x82")));
}

TEST_CASE("utf8: a prefix never splits a sequence") {
  using luad::runtime::utf8_prefix;
  const std::string text = "a\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80z";  // a é € 😀 z: 1+2+3+4+1
  CHECK(utf8_prefix(text, 100) == text);
  CHECK(utf8_prefix(text, 0).empty());
  // Each cut falls back to the start of the sequence it lands in.
  const std::size_t expected[] = {0, 1, 1, 3, 3, 3, 6, 6, 6, 6, 10, 11};
  for (std::size_t max = 0; max <= text.size(); ++max) {
    INFO(max);
    CHECK(utf8_prefix(text, max).size() == expected[max]);
    CHECK(luad::runtime::valid_utf8(utf8_prefix(text, max)));
  }
}
