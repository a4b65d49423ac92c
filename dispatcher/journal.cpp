// Names of run states, as the `runs` table stores them (see journal.hpp).
#include "dispatcher/journal.hpp"

#include <array>

namespace luad::dispatcher {

namespace {

constexpr std::array<std::string_view, 7> state_names = {
    "running", "sleeping", "waiting", "completed", "failed", "suspended", "terminated",
};
static_assert(static_cast<std::size_t>(run_state::terminated) + 1 == state_names.size(),
              "state_names must list every run_state in order");

}  // namespace

std::string_view run_state_name(run_state s) {
  auto i = static_cast<std::size_t>(s);
  return i < state_names.size() ? state_names[i] : std::string_view("unknown");
}

std::optional<run_state> parse_run_state(std::string_view name) {
  for (std::size_t i = 0; i < state_names.size(); ++i) {
    if (state_names[i] == name) return static_cast<run_state>(i);
  }
  return std::nullopt;
}

}  // namespace luad::dispatcher
