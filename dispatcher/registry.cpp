// Command registry: routing, unknown ids, and the frozen-after-startup rule.
#include "dispatcher/registry.hpp"

#include <stdexcept>
#include <string>

namespace luad::dispatcher {

void registry::add(command_id id, handler& h) {
  auto i = static_cast<std::size_t>(id);
  if (frozen()) throw std::logic_error("command registry is frozen");
  if (i == 0 || i >= handlers_.size()) throw std::logic_error("command id out of range");
  if (handlers_[i]) {
    throw std::logic_error("a handler for " + std::string(command_name(id)) +
                           " is already registered");
  }
  handlers_[i] = &h;
}

bool registry::has(command_id id) const {
  auto i = static_cast<std::size_t>(id);
  return i < handlers_.size() && handlers_[i] != nullptr;
}

void registry::submit(command&& cmd, completion&& done) const {
  auto i = static_cast<std::size_t>(cmd.id);
  if (i >= handlers_.size() || !handlers_[i]) {
    done.fail(error{
        error_kind::invalid, "no dispatcher handles command " + std::to_string(i), false, {}});
    return;
  }
  handlers_[i]->submit(std::move(cmd), std::move(done));
}

}  // namespace luad::dispatcher
