// Fuzzes json.decode's parser (runtime::json_decode): any text a script or a
// file may hand it. What it accepts must encode (json_encode shares its depth
// limit and only refuses what decode never makes), and that encoding must be
// a fixed point: decoding and encoding it again gives the same text.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "runtime/json.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto v = luad::runtime::json_decode(text);
  if (!v) return 0;
  auto once = luad::runtime::json_encode(*v);
  if (!once) std::abort();
  auto back = luad::runtime::json_decode(*once);
  if (!back) std::abort();
  auto twice = luad::runtime::json_encode(*back);
  if (!twice || *twice != *once) std::abort();
  return 0;
}
