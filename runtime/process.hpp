// A process: one lua_State with a counting allocator, its main chunk run as a
// coroutine, and the state machine that lets completions from any thread
// re-queue it while guaranteeing it never runs on two workers at once.
//
// DESIGN. `state_` moves runnable → running → (waiting | runnable | done).
// A completion claims the current wait with `claimed_` (only one claimant per
// wait: the dispatcher's completion or a kill), stores the outcome, then wakes
// the process: waiting → runnable (and enqueues it) or, when the worker is still
// finishing the turn that issued the command, running → notified, which the
// worker sees when it tries running → waiting, and re-queues the process itself.
// Kill sets `kill_reason_` and wakes the process if it can claim the wait; the
// worker checks the reason before every resume and the count hook checks it
// while Lua runs, so a kill lands within one instruction budget.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <utility>

#include "dispatcher/command.hpp"
#include "runtime/arena.hpp"
#include "runtime/code.hpp"
#include "runtime/limits.hpp"
#include "runtime/lua.hpp"

namespace luad::runtime {

class scheduler;
class yield_object;

/// Why Lua last yielded to the scheduler (as opposed to a user coroutine yield).
enum class suspend_kind : std::uint8_t { none, command, preempt, doom };

class process final : public dispatcher::completion_target {
 public:
  enum state : std::uint8_t { runnable, running, waiting, notified, done };

  process(scheduler& owner, pid id, chunk_ptr code, spawn_options&& opts);
  ~process();

  /// The process whose Lua state (or coroutine) `L` is.
  static process* of(lua_State* L) { return *static_cast<process**>(lua_getextraspace(L)); }

  // completion_target
  void add_ref() noexcept override { refs_.fetch_add(1, std::memory_order_relaxed); }
  void release_ref() noexcept override;
  void complete(outcome&& result) noexcept override;

  /// Runs one turn on the calling worker. Returns after the process yielded,
  /// waits, or ended (then it has been retired).
  void run_turn(unsigned worker_index);
  /// Asks the process to end with `reason` (any thread).
  void request_kill(exit_reason reason);

  pid id() const { return id_; }
  unsigned last_worker() const { return last_worker_; }
  void set_home(unsigned worker_index) { last_worker_ = worker_index; }
  lua_State* lua() const { return L_; }
  const spawn_options& options() const { return opts_; }
  /// Bytes of memory the process's Lua heap holds (its arena's footprint).
  std::size_t memory_used() const { return heap_.footprint(); }
  std::uint64_t instructions() const { return instructions_; }

  // --- used by the trampoline, sandbox and hook (worker thread only) -------
  /// Records a command yield; the worker sends it after lua_resume returns.
  void suspend_for(yield_object* y) {
    pending_ = y;
    suspend_ = suspend_kind::command;
  }
  suspend_kind suspended() const { return suspend_; }
  /// Marks the process for termination; Lua code can no longer catch it.
  void doom(exit_reason reason, const char* why);
  bool doomed() const { return doom_reason_ != exit_reason::normal; }
  /// Dooms with `limit` if an error was caught while the most recent
  /// allocation had been refused: the memory limit, even when a binding
  /// re-raised the memory error as an ordinary error.
  void doom_if_out_of_memory(int status) {
    if (status == LUA_ERRMEM || last_alloc_refused_)
      doom(exit_reason::limit, "memory limit exceeded");
  }
  /// Completes the pending command at once with `e` (for a wait that cannot
  /// suspend because a C call without continuation is on the stack).
  void fail_pending_now(error e);
  /// The outcome of the last command, for the continuation.
  const outcome& last_outcome() const { return outcome_; }
  void count_hook(lua_State* L);
  void set_suspend(suspend_kind k) { suspend_ = k; }
  /// Takes the pending yield object (the continuation then releases it).
  yield_object* take_pending() { return std::exchange(pending_, nullptr); }
  /// Bit i set: the sandbox already materialised lazy global i.
  std::uint32_t globals_opened = 0;

 private:
  static void* allocate(void* ud, void* ptr, std::size_t osize, std::size_t nsize) noexcept;
  static int start_protected(lua_State* L);
  bool start();
  void wake();
  void after_command_yield();
  void finish(exit_reason reason, int nres);
  void finish_with(exit_info& info);

  scheduler& owner_;
  const pid id_;
  chunk_ptr code_;
  spawn_options opts_;
  lua_State* L_ = nullptr;
  arena heap_;
  std::size_t mem_limit_;
  bool last_alloc_refused_ = false;
  std::uint64_t instructions_ = 0;
  yield_object* pending_ = nullptr;
  outcome outcome_;
  int resume_args_ = 0;
  unsigned last_worker_ = 0;
  suspend_kind suspend_ = suspend_kind::none;
  exit_reason doom_reason_ = exit_reason::normal;
  const char* doom_why_ = nullptr;
  std::atomic<std::uint32_t> refs_{1};
  std::atomic<std::uint8_t> state_{runnable};
  std::atomic<bool> claimed_{true};
  std::atomic<std::uint8_t> kill_reason_{0};  ///< exit_reason + 1, 0 = none
};

}  // namespace luad::runtime
