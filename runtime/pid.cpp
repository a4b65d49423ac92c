// Pid text form.
#include "runtime/pid.hpp"

#include <charconv>

namespace luad::runtime {

std::string pid::to_string() const { return std::to_string(node) + "." + std::to_string(serial); }

std::optional<pid> pid::parse(std::string_view text) {
  auto dot = text.find('.');
  if (dot == std::string_view::npos) return std::nullopt;
  pid p;
  const char* end = text.data() + dot;
  auto r1 = std::from_chars(text.data(), end, p.node);
  if (r1.ec != std::errc{} || r1.ptr != end || dot == 0) return std::nullopt;
  const char* last = text.data() + text.size();
  auto r2 = std::from_chars(end + 1, last, p.serial);
  if (r2.ec != std::errc{} || r2.ptr != last || p.serial == 0) return std::nullopt;
  return p;
}

}  // namespace luad::runtime
