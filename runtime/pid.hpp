// Process identifiers: `<node>.<serial>`, never reused while the daemon runs.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace luad::runtime {

/// A process id. Serial 0 is never issued, so a default pid names no process.
struct pid {
  std::uint32_t node = 0;
  std::uint64_t serial = 0;

  /// "0.42"
  std::string to_string() const;
  /// Parses "0.42"; nullopt on anything else.
  static std::optional<pid> parse(std::string_view text);
  explicit operator bool() const { return serial != 0; }
  friend bool operator==(const pid&, const pid&) = default;
};

}  // namespace luad::runtime

template <>
struct std::hash<luad::runtime::pid> {
  std::size_t operator()(const luad::runtime::pid& p) const noexcept {
    return std::hash<std::uint64_t>{}(p.serial * 0x9E3779B97F4A7C15ull ^ p.node);
  }
};
