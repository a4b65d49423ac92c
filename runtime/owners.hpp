// Owners: the account a tree of processes of one owner shares (live processes,
// memory, timers, against the quotas its profile sets), the registry that hands
// accounts out, and the one rule for acting on another owner's processes.
#pragma once

#include <atomic>
#include <cstddef>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "runtime/limits.hpp"
#include "runtime/result.hpp"

namespace luad::runtime {

/// What one owner may hold at once (0 = unlimited).
struct owner_quotas {
  std::size_t processes = 0;  ///< live processes
  std::size_t memory = 0;     ///< sum of the memory limits of its live processes, bytes
  std::size_t timers = 0;     ///< pending time.after timers

  bool operator==(const owner_quotas&) const = default;
};

/// The counters of one owner, shared (through process_context::account) by
/// every process it runs. Thread-safe: the counters are atomics, the quotas
/// may be replaced while processes run (a config reload).
class owner_account {
 public:
  /// `keeps_names`: a name its processes register stays reserved to it after
  /// the process ends (a workflow's worker gets its name back on restart).
  owner_account(std::string owner, owner_quotas q, bool keeps_names = false);

  const std::string& owner() const { return owner_; }
  bool keeps_names() const { return keeps_names_; }
  owner_quotas quotas() const;
  void set_quotas(const owner_quotas& q);

  /// Counts a new process whose memory limit is `memory` bytes (0: none);
  /// fails with `limit` (and counts nothing) past a quota, and with
  /// `unavailable` (retryable) while the account is stopping.
  status try_add_process(std::size_t memory);
  /// Gives back what try_add_process counted; the last process out ends a stop.
  void remove_process(std::size_t memory) noexcept;

  /// An owner-wide kill began (scheduler::kill_owner): new processes are
  /// refused until every live one has ended, so that a spawn bomb's survivors
  /// cannot refill the slots its killed processes free. Nothing to stop
  /// (no live process) leaves the account open at once.
  void begin_stop() noexcept;
  /// Whether a stop is under way (a spawn that slipped past the refusal
  /// checks this after it entered the process table, and kills itself).
  bool stopping() const noexcept { return stopping_.load(); }
  /// Counts a pending timer; false past the timer quota.
  bool try_add_timer() noexcept;
  void remove_timer() noexcept;

  std::size_t processes() const { return processes_.load(std::memory_order_relaxed); }
  std::size_t memory() const { return memory_.load(std::memory_order_relaxed); }
  std::size_t timers() const { return timers_.load(std::memory_order_relaxed); }

 private:
  const std::string owner_;
  const bool keeps_names_;
  std::atomic<std::size_t> max_processes_, max_memory_, max_timers_;
  std::atomic<std::size_t> processes_{0}, memory_{0}, timers_{0};
  std::atomic<bool> stopping_{false};  // sequentially consistent: see begin_stop
};
using account_ptr = std::shared_ptr<owner_account>;

/// Accounts by key (the daemon uses "OWNER/PROFILE" for submissions and the
/// owner for workflows), each made on first use and kept: keys are bounded by
/// the peers let in and the config's profiles and workflows. Thread-safe.
class owner_registry {
 public:
  /// The account of `key`, made for `owner` if new; its quotas become `q`.
  account_ptr account(const std::string& key, const std::string& owner, const owner_quotas& q,
                      bool keeps_names = false);
  /// Every account of `owner` (one per profile it submitted under).
  std::vector<account_ptr> accounts_of(std::string_view owner);

 private:
  std::mutex mu_;
  std::unordered_map<std::string, account_ptr> accounts_;
};

/// What one process (or a socket peer) may do to another owner's process.
enum class owner_verb {
  control,  ///< kill, cancel, link, monitor, info, logs
  send,     ///< messages (process.send, the protocol's send)
};

/// The verb of sending `topic`: the runtime's own topics (CANCEL, EXIT, DOWN,
/// UPGRADE) are control, so nobody forges a cancel or an exit signal to
/// another owner's process; every other topic is a send.
inline owner_verb verb_of_topic(std::string_view topic) {
  bool system = topic == "CANCEL" || topic == "EXIT" || topic == "DOWN" || topic == "UPGRADE";
  return system ? owner_verb::control : owner_verb::send;
}

/// Whether `caller` (an owner and its permissions) may `verb` a process
/// running under `target`: always within one owner; across owners when the
/// caller's permissions grant "process:VERB[:OWNER]" (control implies send),
/// or the target's owner agreed: its `controlled_by` lists the caller (or
/// "*"; for either verb), or its `reachable_by` does for a send `by_name` (to
/// a name one of its processes registered). Fails with permission_denied, saying why.
status may_act(std::string_view caller, const permission_list& perms, const process_context& target,
               owner_verb verb, bool by_name = false);
/// The same for a process `caller` (a reply to a reachable owner is a send by
/// pid from the workflow, allowed when the workflow's `reachable_by` lists
/// the target's owner).
status may_act(const process_context& caller, const process_context& target, owner_verb verb,
               bool by_name = false);

}  // namespace luad::runtime
