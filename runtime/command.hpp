// The runtime's contract with dispatchers: commands (what a yielding process
// asks for), completions (the one-shot handle that hands the outcome back) and
// command_sink (where the scheduler sends commands; dispatcher::registry is one).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string_view>
#include <utility>

#include "runtime/pid.hpp"
#include "runtime/value.hpp"

namespace luad::runtime {

/// Every command a module can yield. Values are stable: a later issue journals
/// them for durable workflows. Add new ids at the end.
enum class command_id : std::uint16_t {
  clock_sleep = 1,    ///< args: seconds (number); result: nil after the delay
  fetch_request = 2,  ///< args: a request map (see dispatcher/fetch.hpp); result: a response map
  store_op = 3,  ///< args: an operation map (see dispatcher/storage.hpp); result: per operation
  /// args: {kind = "now" | "random" | "uuid" | "side_effect", value = ...}; the
  /// nondeterministic values of the `workflow` module (see modules/workflow.cpp),
  /// yielded so that a durable run journals them and replays them unchanged.
  workflow_value = 4,
  max_id,  ///< one past the last id; not a command
};

/// "clock.sleep"; "unknown" for ids without a name.
std::string_view command_name(command_id id);

/// A plain, serialisable request to a dispatcher.
struct command {
  command_id id;
  value args;
};

/// Whoever waits for a completion (a process). The dispatcher holds a counted
/// reference until it completes. `complete` may be called from any thread;
/// `token` names the wait it answers, so a late answer to an old wait is dropped.
class completion_target {
 public:
  virtual void add_ref() noexcept = 0;
  virtual void release_ref() noexcept = 0;
  virtual void complete(std::uint64_t token, outcome&& result) noexcept = 0;
  /// False once nobody waits for the answer to `token` any more (the process
  /// was killed or ended): a dispatcher may then drop the work early.
  virtual bool awaits(std::uint64_t token) const noexcept = 0;

 protected:
  ~completion_target() = default;
};

/// A one-shot, move-only completion handle. Completing twice is impossible by
/// construction; dropping it unfinished completes with `canceled`, so a process
/// never waits for a command that a dispatcher has forgotten.
class completion {
 public:
  completion() = default;
  explicit completion(completion_target* target, std::uint64_t token = 0)
      : target_(target), token_(token) {
    target_->add_ref();
  }
  completion(completion&& o) noexcept
      : target_(std::exchange(o.target_, nullptr)), token_(o.token_) {}
  completion& operator=(completion&& o) noexcept {
    if (this != &o) {
      reset();
      target_ = std::exchange(o.target_, nullptr);
      token_ = o.token_;
    }
    return *this;
  }
  completion(const completion&) = delete;
  completion& operator=(const completion&) = delete;
  ~completion() { reset(); }

  /// Completes with a value (thread-safe; the handle is empty afterwards).
  void succeed(value v = {}) { finish(outcome::success(std::move(v))); }
  /// Completes with a structured error.
  void fail(error e) { finish(outcome::failure(std::move(e))); }
  explicit operator bool() const { return target_ != nullptr; }
  /// True when the answer is no longer wanted (see completion_target::awaits):
  /// long work (an HTTP request) polls this and stops early. Any thread.
  bool abandoned() const noexcept { return !target_ || !target_->awaits(token_); }

 private:
  void finish(outcome&& o) {
    if (completion_target* t = std::exchange(target_, nullptr)) {
      t->complete(token_, std::move(o));
      t->release_ref();
    }
  }
  void reset() {
    if (target_) fail(error{error_kind::canceled, "the dispatcher dropped the command", false, {}});
  }
  completion_target* target_ = nullptr;
  std::uint64_t token_ = 0;
};

/// Where commands go. `submit` completes `done` now or later, from any thread;
/// it is called from worker threads and must be safe to call concurrently.
class command_sink {
 public:
  /// Routes `cmd` to whoever fulfils it; an unknown id completes with `invalid`.
  virtual void submit(command&& cmd, completion&& done) const = 0;
  /// A message sent to the process whose own sink this is (a durable run's
  /// journal, which records it before the process may receive it): success
  /// once it is accepted, or why it was refused; nullopt when this sink takes
  /// no messages (the mailbox does). `recorded`, if set, is called (on
  /// another thread) once an accepted message is durable, or has failed.
  virtual std::optional<outcome> take_message(pid from, std::string_view topic,
                                              std::string_view body,
                                              std::function<void(outcome)> recorded = {}) const {
    (void)from, (void)topic, (void)body, (void)recorded;
    return std::nullopt;
  }
  /// The seed of math.random for the process whose own sink this is, when
  /// its draws must be the same each time it runs (a durable run's replay);
  /// nullopt: Lua's own random seed.
  virtual std::optional<std::uint64_t> random_seed() const { return std::nullopt; }
  /// True for a durable run's journal: what bypasses commands (a receive from
  /// the mailbox, a plain spawn, time.after) would not be replayed, so the
  /// modules take the journaled path or refuse (runtime::process::durable).
  virtual bool journaled() const { return false; }
  /// True when the processes it spawns send their commands here too (the
  /// fakes of `luad test`: a child's sleeps and requests are faked as well).
  virtual bool shared_with_children() const { return false; }

 protected:
  ~command_sink() = default;
};

}  // namespace luad::runtime
