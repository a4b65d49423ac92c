// Process identifiers: `<node>.<serial>`, never reused while the daemon runs.
#pragma once

#include <cstddef>
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
  /// The light-userdata form scripts hold: node in the top 16 bits, serial in
  /// the low 48. Never NULL for a real pid (NULL is json.null).
  void* to_pointer() const {
    return reinterpret_cast<void*>((std::uintptr_t{node} << 48) | (serial & k_serial_mask));
  }
  static pid from_pointer(const void* p) {
    auto bits = reinterpret_cast<std::uintptr_t>(p);
    return pid{static_cast<std::uint32_t>(bits >> 48), bits & k_serial_mask};
  }
  static constexpr std::uint64_t k_serial_mask = (std::uint64_t{1} << 48) - 1;
  friend bool operator==(const pid&, const pid&) = default;
};

}  // namespace luad::runtime

template <>
struct std::hash<luad::runtime::pid> {
  std::size_t operator()(const luad::runtime::pid& p) const noexcept {
    return std::hash<std::uint64_t>{}(p.serial * 0x9E3779B97F4A7C15ull ^ p.node);
  }
};
