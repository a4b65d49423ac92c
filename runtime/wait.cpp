// A process's wait: opening it, the claim protocol, and the outcome slot the
// claimant fills and the continuation reads (DESIGN in runtime/wait.hpp).
#include "runtime/wait.hpp"

#include <new>

#include "runtime/yield.hpp"

namespace luad::runtime {

wait_slot::~wait_slot() { delete box_; }

void wait_slot::fail_now(error e) { set(kind::boxed, new outcome(outcome::failure(std::move(e)))); }

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

void wait_slot::store(outcome&& o) noexcept {
  if (!o.err && o.val.is_nil()) {
    set(kind::nil);
  } else if (auto* box = new (std::nothrow) outcome(std::move(o))) {
    set(kind::boxed, box);
  } else {
    set(kind::unstorable);
  }
}

}  // namespace luad::runtime
