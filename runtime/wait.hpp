// A process's wait: the pending yield object, the token and claim word, the
// command waited on and the outcome slot — one owner for all of them.
//
// DESIGN. The word holds the open wait's token << 2 | k_receiving | k_claimed;
// the token counts the waits the process opened (0: none yet). The worker
// that runs the process opens a wait after the turn that yielded (`open`).
// Exactly one party claims it: the completion carrying its token (`claim`), a
// sender if it is a receive (`claim_open(k_receiving)`), or a kill
// (`claim_open(0)`). The claimant alone stores the outcome, then wakes the
// process; the continuation reads it on the worker after the wake. A late
// completion of an older wait carries an old token and finds nothing to
// claim. Nil results and message wake-ups need no allocation; anything else is
// boxed, so an idle process carries one pointer, not an outcome.
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>
#include <utility>

#include "runtime/command.hpp"
#include "runtime/yield.hpp"

namespace luad::runtime {

class wait_slot {
 public:
  wait_slot() = default;
  ~wait_slot();
  wait_slot(const wait_slot&) = delete;
  wait_slot& operator=(const wait_slot&) = delete;

  // --- the worker running the process --------------------------------------
  /// A binding yielded `y` (the trampoline): it is the wait to open.
  void suspend_for(yield_object* y) { pending_ = y; }
  /// Answers the pending yield at once with `e`, without opening a wait (a C
  /// call without continuation is on the stack).
  void fail_now(error e);
  /// True before the process opened its first wait.
  bool never_opened() const { return (word_.load(std::memory_order_relaxed) >> 2) == 0; }
  struct opened {
    std::uint64_t token;  ///< names the wait in its completion
    bool receiving;       ///< a message ends it
  };
  /// Opens the wait for the pending yield object: a new token, unless it
  /// continues the previous wait (a receive woken by a message it did not
  /// select). Sequentially consistent, for the kill race (process.cpp).
  opened open();
  /// A snapshot: true when a message ends the open wait (any thread).
  bool receiving() const { return word_.load(std::memory_order_relaxed) & k_receiving; }
  /// The command the opened wait sends, if any; records its id for waiting_on.
  std::optional<command> take_command();
  /// Takes the pending yield object (the continuation then releases it).
  yield_object* take_pending() { return std::exchange(pending_, nullptr); }
  /// How the last wait ended, for the continuation (claimant stored it).
  const outcome& result() const;
  /// Drops the last result once the continuation has used it.
  void clear_result() noexcept { set(kind::nil); }
  /// Releases a pending yield object whose continuation will never run.
  void abandon() noexcept;

  // --- any thread: the claim protocol ---------------------------------------
  static constexpr std::uint64_t k_claimed = 1, k_receiving = 2;
  /// Claims the wait named by `token` if it is still open.
  bool claim(std::uint64_t token) noexcept;
  /// Claims the open wait if its flags include `need`.
  bool claim_open(std::uint64_t need) noexcept;
  /// True while the wait named by `token` is open and unclaimed.
  bool awaits(std::uint64_t token) const noexcept {
    std::uint64_t w = word_.load(std::memory_order_acquire);
    return (w >> 2) == token && !(w & k_claimed);
  }
  /// Stores a completion's outcome (claimant only, before the wake).
  void store(outcome&& o) noexcept;
  /// Stores "a message arrived" (claimant only, before the wake).
  void store_message() noexcept { set(kind::message); }
  /// A snapshot of the last command sent (for listings).
  command_id waiting_command() const {
    return static_cast<command_id>(cmd_.load(std::memory_order_relaxed));
  }

 private:
  enum class kind : std::uint8_t { nil, message, boxed, unstorable };
  void set(kind k, outcome* box = nullptr) noexcept;

  yield_object* pending_ = nullptr;             // worker only
  outcome* box_ = nullptr;                      // written by the claimant, read by the continuation
  std::atomic<std::uint64_t> word_{k_claimed};  // starts with none open
  std::atomic<std::uint16_t> cmd_{0};           // command id of the last command sent
  kind kind_ = kind::nil;
};

// The hot path of every wait (a message, a sleep), inline so that the worker's
// turn and the trampoline pay no calls for them.

inline wait_slot::opened wait_slot::open() {
  std::uint64_t token = word_.load(std::memory_order_relaxed) >> 2;  // only we change it
  if (!pending_->continues_wait()) ++token;
  bool receiving = pending_->wants_messages();
  word_.store((token << 2) | (receiving ? k_receiving : 0));
  return {token, receiving};
}

inline std::optional<command> wait_slot::take_command() {
  if (!pending_->has_command()) return std::nullopt;
  command cmd = pending_->make_command();
  cmd_.store(static_cast<std::uint16_t>(cmd.id), std::memory_order_relaxed);
  return cmd;
}

inline bool wait_slot::claim_open(std::uint64_t need) noexcept {
  std::uint64_t w = word_.load();
  while ((w & need) == need && !(w & k_claimed)) {
    if (word_.compare_exchange_weak(w, w | k_claimed)) return true;
  }
  return false;
}

inline void wait_slot::set(kind k, outcome* box) noexcept {
  delete box_;
  box_ = box;
  kind_ = k;
}

inline const outcome& wait_slot::result() const {
  static const outcome nil = outcome::success({});
  static const outcome message = outcome::success(value(true));
  static const outcome oom = outcome::failure(
      {error_kind::unavailable, "out of memory storing a command's result", true, {}});
  switch (kind_) {
    case kind::nil: return nil;
    case kind::message: return message;
    case kind::boxed: return *box_;
    case kind::unstorable: break;
  }
  return oom;
}

}  // namespace luad::runtime
