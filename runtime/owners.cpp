// Owner accounts, their registry and the cross-owner rule (owners.hpp).
#include "runtime/owners.hpp"

#include <algorithm>

namespace luad::runtime {

namespace {

// Adds `n` to `counter` unless that passes `max` (0 = unlimited).
bool try_add(std::atomic<std::size_t>& counter, std::size_t n, std::size_t max) {
  std::size_t now = counter.load(std::memory_order_relaxed);
  do {
    if (max && (now + n > max || now + n < now)) return false;
  } while (!counter.compare_exchange_weak(now, now + n));  // seq_cst: see try_add_process
  return true;
}

bool lists(const std::vector<std::string>& owners, std::string_view owner) {
  return std::any_of(owners.begin(), owners.end(),
                     [&](const std::string& o) { return o == "*" || o == owner; });
}

std::string quota_text(std::size_t n) { return std::to_string(n); }

}  // namespace

owner_account::owner_account(std::string owner, owner_quotas q, bool keeps_names)
    : owner_(std::move(owner)),
      keeps_names_(keeps_names),
      max_processes_(q.processes),
      max_memory_(q.memory),
      max_timers_(q.timers) {}

owner_quotas owner_account::quotas() const {
  return {max_processes_.load(std::memory_order_relaxed),
          max_memory_.load(std::memory_order_relaxed), max_timers_.load(std::memory_order_relaxed)};
}

void owner_account::set_quotas(const owner_quotas& q) {
  max_processes_.store(q.processes, std::memory_order_relaxed);
  max_memory_.store(q.memory, std::memory_order_relaxed);
  max_timers_.store(q.timers, std::memory_order_relaxed);
}

status owner_account::try_add_process(std::size_t memory) {
  std::size_t max_memory = max_memory_.load(std::memory_order_relaxed);
  if (max_memory && memory == 0)
    return fail(error_kind::limit, "owner " + owner_ + " has a memory quota (" +
                                       quota_text(max_memory) +
                                       " bytes): a process without a memory limit cannot fit it");
  std::size_t max = max_processes_.load(std::memory_order_relaxed);
  if (!try_add(processes_, 1, max))
    return fail(error_kind::limit, "owner " + owner_ + " has reached its process quota (" +
                                       quota_text(max) + " live processes)");
  // Counted first, then the stop looked at: begin_stop's look at the count
  // then sees this process, so either it is refused here or the stop stays
  // on until it has gone (and the spawn kills it, see stopping()).
  if (stopping_.load()) {
    remove_process(0);
    return fail(error_kind::unavailable,
                "owner " + owner_ + " is being stopped: no new processes until its last one ends",
                true);
  }
  if (!try_add(memory_, memory, max_memory)) {
    remove_process(0);
    return fail(error_kind::limit, "owner " + owner_ + " has reached its memory quota (" +
                                       quota_text(max_memory) +
                                       " bytes of memory limits of live processes)");
  }
  return done{};
}

void owner_account::remove_process(std::size_t memory) noexcept {
  memory_.fetch_sub(memory, std::memory_order_relaxed);
  if (processes_.fetch_sub(1) == 1) stopping_.store(false);
}

void owner_account::begin_stop() noexcept {
  stopping_.store(true);
  // The last process may have left between the caller's look and the store
  // above; then nobody else would open the account again.
  if (processes_.load() == 0) stopping_.store(false);
}

bool owner_account::try_add_timer() noexcept {
  return try_add(timers_, 1, max_timers_.load(std::memory_order_relaxed));
}

void owner_account::remove_timer() noexcept { timers_.fetch_sub(1, std::memory_order_relaxed); }

account_ptr owner_registry::account(const std::string& key, const std::string& owner,
                                    const owner_quotas& q, bool keeps_names) {
  std::lock_guard lock(mu_);
  account_ptr& a = accounts_[key];
  if (!a) {
    a = std::make_shared<owner_account>(owner, q, keeps_names);
  } else {
    a->set_quotas(q);
  }
  return a;
}

std::vector<account_ptr> owner_registry::accounts_of(std::string_view owner) {
  std::lock_guard lock(mu_);
  std::vector<account_ptr> found;
  for (const auto& [key, a] : accounts_)
    if (a->owner() == owner) found.push_back(a);
  return found;
}

status may_act(std::string_view caller, const permission_list& perms, const process_context& target,
               owner_verb verb, bool by_name) {
  if (caller == target.owner) return done{};
  const char* name = verb == owner_verb::control ? "control" : "send";
  if (allows_process(perms, name, target.owner)) return done{};
  if (lists(target.controlled_by, caller)) return done{};  // (control covers send)
  if (verb == owner_verb::send && by_name && lists(target.reachable_by, caller)) return done{};
  std::string who = target.owner.empty() ? std::string("the daemon") : target.owner;
  return fail(error_kind::permission_denied,
              verb == owner_verb::control
                  ? "a process of " + who + " may not be controlled by " + std::string(caller) +
                        " (needs the permission process:control)"
                  : "a process of " + who + " may not be sent to by " + std::string(caller) +
                        " (needs the permission process:send, or a name the owner made "
                        "reachable)");
}

status may_act(const process_context& caller, const process_context& target, owner_verb verb,
               bool by_name) {
  if (verb == owner_verb::send && caller.owner != target.owner &&
      lists(caller.reachable_by, target.owner))
    return done{};  // a reachable workflow answering those it serves
  return may_act(caller.owner, caller.permissions, target, verb, by_name);
}

}  // namespace luad::runtime
