// A process's wait: opening it, the claim protocol, and the outcome slot the
// claimant fills and the continuation reads (DESIGN in runtime/wait.hpp).
#include "runtime/wait.hpp"

#include <new>

#include "runtime/yield.hpp"

namespace luad::runtime {

wait_slot::~wait_slot() { delete box_; }

void wait_slot::fail_now(error e) { set(kind::boxed, new outcome(outcome::failure(std::move(e)))); }

wait_slot::opened wait_slot::open() {
  std::uint64_t token = word_.load(std::memory_order_relaxed) >> 2;  // only we change it
  if (!pending_->continues_wait()) ++token;
  bool receiving = pending_->wants_messages();
  word_.store((token << 2) | (receiving ? k_receiving : 0));
  return {token, receiving};
}

std::optional<command> wait_slot::take_command() {
  if (!pending_->has_command()) return std::nullopt;
  command cmd = pending_->make_command();
  cmd_.store(static_cast<std::uint16_t>(cmd.id), std::memory_order_relaxed);
  return cmd;
}

void wait_slot::abandon() noexcept {
  if (yield_object* y = std::exchange(pending_, nullptr)) y->release();
}

bool wait_slot::claim(std::uint64_t token) noexcept {
  std::uint64_t w = word_.load();
  while ((w >> 2) == token && !(w & k_claimed)) {
    if (word_.compare_exchange_weak(w, w | k_claimed)) return true;
  }
  return false;
}

bool wait_slot::claim_open(std::uint64_t need) noexcept {
  std::uint64_t w = word_.load();
  while ((w & need) == need && !(w & k_claimed)) {
    if (word_.compare_exchange_weak(w, w | k_claimed)) return true;
  }
  return false;
}

void wait_slot::store(outcome&& o) noexcept {
  if (!o.err && o.val.is_nil()) {
    set(kind::nil);
  } else if (auto* box = new (std::nothrow) outcome(std::move(o))) {
    set(kind::boxed, box);
  } else {
    set(kind::unstorable);
  }
}

void wait_slot::set(kind k, outcome* box) noexcept {
  delete box_;
  box_ = box;
  kind_ = k;
}

const outcome& wait_slot::result() const {
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
