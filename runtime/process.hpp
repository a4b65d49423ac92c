// A process: one lua_State with a counting allocator, its main chunk run as a
// coroutine, and the state machine that lets completions from any thread
// re-queue it while guaranteeing it never runs on two workers at once.
//
// DESIGN. `state_` moves runnable → running → (waiting | runnable | done).
// Each wait has a token; `wait_` (runtime/wait.hpp) holds the open wait's
// token, its claim flag and "a message ends it" (receive), the pending yield
// object and the outcome. Exactly one party claims a wait: the completion
// carrying its token, a sender (if the process is receiving), or a kill. The
// claimant stores the outcome in the wait, then wakes the process: waiting →
// runnable (and enqueues it) or, when the worker is still finishing the turn
// that opened the wait, running → notified, which the worker sees when it tries
// running → waiting, and re-queues the process itself. A late completion of an
// older wait carries an old token and is dropped. Kill sets `kill_reason_` and
// wakes the process if it can claim the wait; the worker checks the reason
// before every resume and after every turn (a kill that came during the turn
// wins over a normal return), and while Lua runs the watchdog's one-shot hook
// (runtime/watchdog.cpp) checks it once the turn is past its slice, so a kill
// lands within about a slice. The hook also preempts, and enforces the cpu
// limit; a standing count hook is set only to count instructions for an
// instruction limit.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "runtime/arena.hpp"
#include "runtime/code.hpp"
#include "runtime/command.hpp"
#include "runtime/limits.hpp"
#include "runtime/lua.hpp"
#include "runtime/mailbox.hpp"
#include "runtime/wait.hpp"

namespace luad::runtime {

class scheduler;
class string_cache;

/// Why Lua last yielded to the scheduler (as opposed to a user coroutine yield).
enum class suspend_kind : std::uint8_t { none, command, preempt, doom, exit };

class process final : public completion_target {
 public:
  enum state : std::uint8_t { runnable, running, waiting, notified, done };

  process(scheduler& owner, pid id, chunk_ptr code, spawn_options&& opts);
  ~process();
  // Made by the spawning thread, freed by the worker that ran it last: from a
  // pool that trades blocks between threads in batches (runtime/block_pool.hpp).
  static void* operator new(std::size_t size);
  static void operator delete(void* block) noexcept;

  /// The process whose Lua state (or coroutine) `L` is.
  static process* of(lua_State* L) { return *static_cast<process**>(lua_getextraspace(L)); }

  // completion_target
  void add_ref() noexcept override { refs_.fetch_add(1, std::memory_order_relaxed); }
  void release_ref() noexcept override;
  void complete(std::uint64_t token, outcome&& result) noexcept override;
  bool awaits(std::uint64_t token) const noexcept override;
  /// Puts `m` in the mailbox and wakes the process if it waits in receive.
  /// Any thread; takes ownership of `m`.
  void deliver(message* m) noexcept;
  /// Owner worker only.
  runtime::mailbox& mailbox() { return mailbox_; }
  scheduler& owner() { return owner_; }

  /// Runs one turn on the calling worker. Returns after the process yielded,
  /// waits, or ended (then it has been retired).
  void run_turn(unsigned worker_index);
  /// Asks the process to end with `reason` (any thread); `why` becomes the
  /// error message (the first kill's wins).
  void request_kill(exit_reason reason, std::string why = {});

  pid id() const { return id_; }
  unsigned last_worker() const { return last_worker_; }
  void set_home(unsigned worker_index) { last_worker_ = worker_index; }
  lua_State* lua() const { return L_; }
  /// Limits, classes, script root and owner (shared with its children).
  const process_context& context() const { return *ctx_; }
  const context_ptr& shared_context() const { return ctx_; }
  /// Runs `on_exit` (if any) once, with the process's exit (scheduler only).
  void call_on_exit(const exit_info& info);
  /// The path (or name) the process's script was compiled from.
  const std::string& script_name() const { return code_->name; }
  /// Bytes of memory the process's Lua heap holds (its arena's footprint).
  std::size_t memory_used() const { return heap_.footprint(); }
  /// VM instructions run, counted only under an instruction limit (else 0).
  std::uint64_t instructions();
  /// Seconds its turns took (steady clock), summed at each turn's end. Any thread.
  double cpu_seconds() const {
    return static_cast<double>(cpu_ns_.load(std::memory_order_relaxed)) / 1e9;
  }
  /// "runnable", "running", "waiting" (on a command), "receiving" or "done";
  /// a snapshot, readable from any thread.
  const char* status() const;
  /// What a waiting process waits for: "message" (in receive) or the command's
  /// name ("clock.sleep"); empty when it is not waiting. A snapshot.
  std::string_view waiting_on() const;

  // --- used by the trampoline, sandbox and hook (worker thread only) -------
  /// The process's wait: the trampoline records a yield in it, the
  /// continuation reads its outcome.
  wait_slot& wait() { return wait_; }
  suspend_kind suspended() const { return suspend_; }
  /// Dooms the process with reason error and `text` as its message (process.exit).
  void set_exit_message(std::string_view text) noexcept;
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
  /// The hook (the watchdog's one-shot, or the instruction counter).
  void on_hook(lua_State* L);
  /// check_interrupt (runtime/interrupt.hpp) for this process.
  void interrupt_check(lua_State* L);
  /// Resumes coroutine `co` from `L` (lua_resume), telling the watchdog that
  /// `co` is the Lua thread to arm meanwhile. The sandbox's resumes use it.
  int resume(lua_State* co, lua_State* L, int narg, int* nres);
  /// Closes coroutine `co` (lua_resetthread), telling the watchdog that `co`
  /// runs its __close handlers meanwhile, so a kill or a limit lands in a
  /// handler that loops. A hook there never yields (a close cannot be
  /// suspended); it only raises. The sandbox's coroutine.close uses it.
  int reset(lua_State* co);
  // --- used by the watchdog (its thread, under its handshake) ---------------
  /// Arms the one-shot hook on `T`, the running thread of some process.
  static void arm_hook(lua_State* T);
  /// The running turn went past the cpu limit.
  void note_over_cpu() { over_cpu_.store(true, std::memory_order_relaxed); }
  /// A kill was asked for (any thread).
  bool kill_requested() const { return kill_reason_.load(std::memory_order_relaxed) != 0; }
  /// Arming walks the state's whole call chain (lua_sethook sets a trap on
  /// every Lua frame): a deep recursion made each arm take milliseconds. The
  /// watchdog then preempts this process no sooner than this (steady ns);
  /// kills and the cpu limit are armed at once. Watchdog thread only (kept
  /// here, not per thread: a held process moves to another thread each time).
  std::int64_t next_preempt_ns = 0;
  /// The process's last long turn was held (a C call that could not yield):
  /// its next turn is handed to a spare at the watchdog's first look, rather
  /// than after its slice, so a loop of long C calls (big sends, sorts,
  /// string.rep) does not capture the worker for a slice each time. Set by
  /// the watchdog when it holds a turn it saw stuck; cleared by a turn that
  /// yielded when asked (runner::prompt_turn_ns), so a pure Lua loop that was
  /// held once (its thread descheduled by the OS) is heavy for one turn at most.
  void note_held() { heavy_.store(true, std::memory_order_relaxed); }

  /// Its commands go to a sink of its own (spawn_options::commands): a
  /// durable run's journal, or the fakes of `luad test`. The clocks of such
  /// a process are commands too (time.now), so that its sink answers them.
  bool own_commands() const { return own_commands_; }
  /// Its own sink journals (command_sink::journaled): a durable run. What
  /// bypasses commands (receive, spawn) is not journaled, so the modules
  /// take the journaled path or refuse it there.
  bool durable() const { return durable_; }
  /// A C module gave this state a userdata with a __gc (scripts may not):
  /// its exit closes the state with lua_close, which runs it. A state without
  /// one is dropped with its arena, unvisited (finish_with).
  void note_finalizer() { has_finalizers_ = true; }
  /// The sink of a process with own_commands() (else null).
  const command_sink* own_sink() const { return own_commands_ ? rare_->commands.get() : nullptr; }
  /// The same, shared, for a child that inherits it
  /// (command_sink::shared_with_children); null when it has none to share.
  std::shared_ptr<const command_sink> sink_for_children() const {
    if (!own_commands_ || !rare_->commands->shared_with_children()) return nullptr;
    return rare_->commands;
  }
  /// Where its commands go: its own sink, else the scheduler's.
  const command_sink& commands() const;

  void set_suspend(suspend_kind k) { suspend_ = k; }
  /// True once the process has ended (any thread).
  bool ended() const { return state_.load(std::memory_order_acquire) == done; }
  /// The live process `to`, with a reference owned by this process (do not
  /// release it), or nullptr. Remembers the last target, so a process that
  /// keeps sending to the same pid skips the process table. Worker only.
  process* target(pid to);
  // --- links and monitors (any thread) --------------------------------------
  /// Links this process and `other` both ways. False if either has ended.
  bool link(process& other);
  /// Removes a link in both directions (no-op if there is none).
  void unlink(process& other);
  /// Lets `watcher` monitor this process under `ref`. False if it has ended.
  bool add_monitor(std::uint64_t ref, pid watcher);
  /// Removes monitor `ref` of `watcher` (only the watcher's own: refs are
  /// guessable); true if it was there.
  bool remove_monitor(std::uint64_t ref, pid watcher);
  /// With trap_exits on, a linked process's exit arrives as an EXIT message
  /// instead of ending this one.
  void set_trap_exits(bool on) { trap_exits_.store(on, std::memory_order_relaxed); }
  bool traps_exits() const { return trap_exits_.load(std::memory_order_relaxed); }

  /// A message being unpacked into the state; freed at exit if unpacking raised.
  message* in_flight = nullptr;
  /// Bit i set: the sandbox already materialised lazy global i.
  std::uint32_t globals_opened = 0;
  /// Set once the process registered a name (so exit only then takes the lock).
  bool has_name = false;
  /// Set while the process asked for UPGRADE messages (process.on_upgrade).
  bool wants_upgrade = false;
  /// The short strings this process received lately, made at its second
  /// message taken, in its own heap (runtime/string_cache.hpp). Owner thread.
  string_cache*& received_strings() { return received_strings_; }

 private:
  static void* allocate(void* ud, void* ptr, std::size_t osize, std::size_t nsize) noexcept;
  static int start_protected(lua_State* L);
  int start();
  void finish_start(int status);
  void end_turn(std::int64_t turn_ns, std::int64_t prompt_ns);
  std::int64_t cpu_left_ns() const;
  void poll_interrupts();
  exit_reason unless_killed(exit_reason r) const;
  void wake();
  void after_command_yield();
  void finish(exit_reason reason, int nres);
  void finish_with(exit_info& info);
  void signal_exit(const exit_info& info);  // runtime/signals.cpp
  void lock_links() noexcept;
  void unlock_links() noexcept { links_lock_.store(false, std::memory_order_release); }

  // What few processes need: kept out of line so idle processes stay small.
  // Made on first use under the links lock; freed with the process.
  struct rare final {
    std::vector<pid> links;
    std::vector<std::pair<std::uint64_t, pid>> monitors;  // (ref, watcher)
    std::function<void(const exit_info&)> on_exit;
    std::shared_ptr<const command_sink> commands;  // set at construction, when own_commands_
    std::string exit_message;
    std::atomic<std::uint64_t> instructions{0};  // under an instruction limit; owner writes
    // Made with the process (an on_exit), freed with it: pooled likewise.
    static void* operator new(std::size_t size);
    static void operator delete(void* block) noexcept;
  };
  rare& rare_locked();  // links lock held
  // The main chunk's arguments, until the process starts.
  struct start_args {
    std::vector<value> args;
    std::string packed;
  };

  scheduler& owner_;
  const pid id_;
  chunk_ptr code_;
  context_ptr ctx_;
  std::unique_ptr<start_args> start_args_;
  lua_State* L_ = nullptr;
  arena heap_;
  std::size_t memory_limit() const { return ctx_->limits.memory ? ctx_->limits.memory : SIZE_MAX; }
  std::atomic<std::uint64_t> cpu_ns_{0};  // written by the owner only
  wait_slot wait_;
  const char* doom_why_ = nullptr;
  runtime::mailbox mailbox_;
  process* last_target_ = nullptr;  // holds a reference
  std::unique_ptr<rare> rare_;
  std::atomic<std::string*> kill_why_{nullptr};
  // The small fields together, so that the object has no padding holes.
  int resume_args_ = 0;
  unsigned last_worker_ = 0;
  std::atomic<std::uint32_t> refs_{1};
  std::atomic<std::uint8_t> state_{runnable};
  std::atomic<std::uint8_t> kill_reason_{0};  ///< exit_reason + 1, 0 = none
  suspend_kind suspend_ = suspend_kind::none;
  exit_reason doom_reason_ = exit_reason::normal;
  // Both written by the process's own worker only (one byte between them).
  bool last_alloc_refused_ : 1 = false;
  bool has_finalizers_ : 1 = false;    // see note_finalizer()
  std::atomic<bool> over_cpu_{false};  // set by the watchdog or at a turn's end
  std::atomic<bool> heavy_{false};     // see note_held()
  // Links and monitors, under a one-byte spin lock (idle processes are many).
  std::atomic<bool> links_lock_{false};
  bool signalled_ = false;  // exit signals sent: no new links or monitors
  std::atomic<bool> trap_exits_{false};
  // rare_->commands replaces the scheduler's sink (set before the process
  // runs, so rare_ is read without the links lock).
  bool own_commands_ = false;
  bool durable_ = false;  // own_commands_ and the sink journals
  // Last, so that no field before it moved when it came (the mailbox's
  // cache-line spacing is measured).
  string_cache* received_strings_ = nullptr;
};

/// Sends `watcher` a DOWN for `target` that was not alive when monitored
/// (reason "noproc"). Never throws (runtime/signals.cpp).
void send_noproc_down(process& watcher, pid target, std::uint64_t ref) noexcept;

}  // namespace luad::runtime
