// Fuzzes the config reader (server::parse_config): any TOML text. It must
// either give a config or throw config_error (a message naming the key),
// never crash or throw anything else.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "server/config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    luad::server::config c = luad::server::parse_config(text, "/fuzz/luad.toml");
    (void)c;
  } catch (const luad::server::config_error&) {
  }
  return 0;
}
