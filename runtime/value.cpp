// Names of error kinds: the strings scripts see in `err.kind`.
#include "runtime/value.hpp"

#include <array>

namespace luad::runtime {

namespace {

constexpr std::array<std::string_view, 10> kind_names = {
    "invalid",  "not_found", "permission_denied", "timeout", "unavailable",
    "canceled", "limit",     "internal",          "syntax",  "runtime",
};
static_assert(static_cast<std::size_t>(error_kind::runtime) + 1 == kind_names.size(),
              "kind_names must list every error_kind in order");

}  // namespace

std::string_view kind_name(error_kind kind) {
  auto i = static_cast<std::size_t>(kind);
  return i < kind_names.size() ? kind_names[i] : std::string_view("internal");
}

std::optional<error_kind> kind_from_name(std::string_view name) {
  for (std::size_t i = 0; i < kind_names.size(); ++i) {
    if (kind_names[i] == name) return static_cast<error_kind>(i);
  }
  return std::nullopt;
}

}  // namespace luad::runtime
