// The command registry: command_id → handler, filled at startup, then frozen.
#pragma once

#include <array>
#include <atomic>

#include "runtime/command.hpp"

namespace luad::dispatcher {

// The command vocabulary is the runtime's contract; dispatchers speak it.
using runtime::command;
using runtime::command_id;
using runtime::command_name;
using runtime::completion;
using runtime::completion_target;
using runtime::error;
using runtime::error_kind;
using runtime::outcome;
using runtime::value;

/// Fulfils commands. `submit` is called from worker threads and must not block
/// for long; it completes `done` now or later, from any thread. Handlers never
/// call Lua.
class handler {
 public:
  virtual void submit(command&& cmd, completion&& done) = 0;

 protected:
  ~handler() = default;
};

/// Maps command ids to handlers. `add` is for startup only; after `freeze` the
/// table is read-only and `submit` is safe from any thread without locking.
class registry final : public runtime::command_sink {
 public:
  /// Registers `h` for `id`. Throws std::logic_error when frozen or taken.
  void add(command_id id, handler& h);
  /// Ends registration; later `add` calls throw.
  void freeze() { frozen_.store(true, std::memory_order_release); }
  bool frozen() const { return frozen_.load(std::memory_order_acquire); }
  /// True when a handler is registered for `id`.
  bool has(command_id id) const;
  /// Routes `cmd` to its handler; an unknown id completes with `invalid`.
  void submit(command&& cmd, completion&& done) const override;

 private:
  std::array<handler*, static_cast<std::size_t>(command_id::max_id)> handlers_{};
  std::atomic<bool> frozen_{false};
};

}  // namespace luad::dispatcher
