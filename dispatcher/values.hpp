// The values dispatcher: answers workflow.value commands (the `workflow`
// module's clock, random bits and side-effect records) at once, on the
// caller's thread. It never blocks and holds no state but a generator per
// thread, so it needs no start or stop.
#pragma once

#include "dispatcher/registry.hpp"

namespace luad::dispatcher {

class values final : public handler {
 public:
  /// Registers its command (workflow.value) in `r`.
  void register_in(registry& r) { r.add(command_id::workflow_value, *this); }

  /// workflow.value: args = {kind = K, value = V?}. Answers by kind: "now",
  /// wall-clock seconds since the Unix epoch (a float); "monotonic", seconds
  /// of the steady clock; "random", 64 random
  /// bits (an integer); "uuid", 128 random bits as {high, low} integers;
  /// "side_effect", V unchanged, or nil when absent (live, a side effect is
  /// never recorded yet: "run it"); "version", its max. "continue_as_new",
  /// "start" and "wait" are a durable run's (its sink answers them) and fail
  /// here with `invalid`, as does anything else.
  /// Completes before it returns. Thread-safe.
  void submit(command&& cmd, completion&& done) override;
};

}  // namespace luad::dispatcher
