// Process lifecycle: the counting allocator, start in protected mode, one turn
// of execution with its cpu accounting and hook, the wake/claim protocol for
// completions and kills, and exit.
#include "runtime/process.hpp"

#include <cstdlib>
#include <cstring>
#include <new>
#include <optional>
#include <type_traits>

#include <spdlog/spdlog.h>

#include "runtime/block_pool.hpp"
#include "runtime/exit_copy.hpp"
#include "runtime/interrupt.hpp"
#include "runtime/logging.hpp"
#include "runtime/lua_value.hpp"
#include "runtime/message_codec.hpp"
#include "runtime/sandbox.hpp"
#include "runtime/scheduler.hpp"
#include "runtime/watchdog.hpp"
#include "runtime/worker.hpp"
#include "runtime/yield.hpp"

namespace luad::runtime {

namespace {

// The hook: the watchdog's one-shot (count 1) or the instruction counter.
void hook_entry(lua_State* L, lua_Debug*) { process::of(L)->on_hook(L); }

// Instructions between two calls of the counting hook (instruction limit only).
constexpr int k_count_step = 10000;

constexpr const char* k_cpu_exceeded = "cpu limit exceeded";

}  // namespace

context_ptr intern_context(process_context&& c) {
  thread_local context_ptr last;
  if (!last || !(*last == c)) last = std::make_shared<const process_context>(std::move(c));
  return last;
}

namespace {
using process_blocks = block_pool<sizeof(process)>;
// Every block is sizeof(process): no class derives from it (nor from rare).
static_assert(std::is_final_v<process> && alignof(process) <= alignof(std::max_align_t));

void* pooled_or_throw(void* block) {
  if (!block) throw std::bad_alloc();
  return block;
}
}  // namespace

void* process::operator new(std::size_t) { return pooled_or_throw(process_blocks::take()); }

void process::operator delete(void* block) noexcept { process_blocks::give(block); }

void* process::rare::operator new(std::size_t) {
  return pooled_or_throw(block_pool<sizeof(rare)>::take());
}

void process::rare::operator delete(void* block) noexcept { block_pool<sizeof(rare)>::give(block); }

process::process(scheduler& owner, pid id, chunk_ptr code, spawn_options&& opts)
    : owner_(owner),
      id_(id),
      code_(std::move(code)),
      ctx_(opts.context ? std::move(opts.context) : intern_context(std::move(opts.ctx))) {
  if (!opts.args.empty() || !opts.packed_args.empty())
    start_args_.reset(new start_args{std::move(opts.args), std::move(opts.packed_args)});
  if (opts.on_exit || opts.commands) {
    rare_ = std::make_unique<rare>();
    rare_->on_exit = std::move(opts.on_exit);
    rare_->commands = std::move(opts.commands);
    own_commands_ = rare_->commands != nullptr;
    durable_ = own_commands_ && rare_->commands->journaled();
  }
}

const command_sink& process::commands() const {
  return own_commands_ ? *rare_->commands : owner_.commands();
}

std::uint64_t process::instructions() {
  lock_links();
  std::uint64_t n = rare_ ? rare_->instructions.load(std::memory_order_relaxed) : 0;
  unlock_links();
  return n;
}

process::rare& process::rare_locked() {
  if (!rare_) rare_ = std::make_unique<rare>();
  return *rare_;
}

void process::call_on_exit(const exit_info& info) {
  // Exit signals have been sent, so nobody adds to rare_ any more.
  if (rare_ && rare_->on_exit) rare_->on_exit(info);
}

void process::set_exit_message(std::string_view text) noexcept {
  const char* why = "";  // out of memory: an empty message beats a crash
  lock_links();
  try {
    std::string& m = rare_locked().exit_message;
    m.assign(text);
    why = m.c_str();
  } catch (...) {
  }
  unlock_links();
  doom(exit_reason::error, why);
}

process::~process() {
  if (L_) lua_close(L_);
  delete kill_why_.load();
}

void process::release_ref() noexcept {
  if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
}

void* process::allocate(void* ud, void* ptr, std::size_t osize, std::size_t nsize) noexcept {
  auto* p = static_cast<process*>(ud);
  if (nsize == 0) {
    if (!ptr) return nullptr;
    // Closing (finish_with): the chunks are dropped whole right after, so a
    // small block need not go back to its free list, and no watchdog walks a
    // state being closed. Skipping these frees is a third of lua_close.
    if (osize <= arena::max_chunked && p->state_.load(std::memory_order_relaxed) == done)
      return nullptr;
    // The watchdog may be walking this state's call chain: see its DESIGN.
    if (runner* r = runner::current()) r->before_free();
    p->heap_.release(ptr, osize);
    return nullptr;
  }
  std::size_t limit = p->memory_limit();
  void* block = ptr ? p->heap_.resize(ptr, osize, nsize, limit) : p->heap_.allocate(nsize, limit);
  p->last_alloc_refused_ = block == nullptr;
  return block;
}

// Runs in protected mode on the fresh state: sandbox, main chunk, arguments.
int process::start_protected(lua_State* L) {
  process* p = of(L);
  install_sandbox(L);
  if (load_bytecode(L, p->code_->bytecode, p->code_->name.c_str()) != LUA_OK) {
    return lua_error(L);
  }
  if (!p->start_args_) return 1;
  for (const value& v : p->start_args_->args) push_value(L, v);
  int n = static_cast<int>(p->start_args_->args.size());
  std::string_view packed = p->start_args_->packed;
  while (packed.size() >= sizeof(std::uint32_t)) {
    std::uint32_t size;
    std::memcpy(&size, packed.data(), sizeof size);
    packed.remove_prefix(sizeof size);
    luaL_checkstack(L, 1, "too many arguments");
    push_message(L, packed.substr(0, size));
    packed.remove_prefix(size);
    ++n;
  }
  return 1 + n;
}

// Makes the state and runs the sandbox and main chunk's load (inside the turn,
// so the watchdog times it). Returns LUA_OK, or a failure for finish_start.
int process::start() {
  heap_.reserve_first(code_->start_bytes.load(std::memory_order_relaxed), memory_limit());
  L_ = lua_newstate(&process::allocate, this);
  if (!L_) return LUA_ERRMEM;
  *static_cast<process**>(lua_getextraspace(L_)) = this;
  runner::current()->switch_thread(L_);
  lua_pushcfunction(L_, &process::start_protected);
  int status = lua_pcall(L_, 0, LUA_MULTRET, 0);
  if (status != LUA_OK) return status;
  start_args_.reset();
  if (ctx_->limits.instructions) {
    // The counter lives in the rare record (few processes have the limit).
    lock_links();
    bool made = true;
    try {
      rare_locked();
    } catch (const std::bad_alloc&) {
      made = false;
    }
    unlock_links();
    if (!made) return LUA_ERRMEM;
    // Coroutines inherit the hook: set it before the script makes any.
    lua_sethook(L_, hook_entry, LUA_MASKCOUNT, k_count_step);
  }
  resume_args_ = lua_gettop(L_) - 1;
  return LUA_OK;
}

void process::finish_start(int status) {
  if (!L_) {
    exit_info info{id_,
                   exit_reason::limit,
                   {},
                   {error_kind::limit, "memory limit: cannot create the Lua state", false, {}}};
    finish_with(info);
    return;
  }
  doom_if_out_of_memory(status);
  if (doomed()) {  // out of memory, killed or over a limit while starting
    finish(doom_reason_, 0);
    return;
  }
  exit_info info{id_, exit_reason::error, {}, to_error(L_, -1)};
  finish_with(info);
}

std::int64_t process::cpu_left_ns() const {
  double limit = ctx_->limits.cpu;
  if (limit <= 0) return INT64_MAX;
  auto left = static_cast<std::int64_t>(limit * 1e9) -
              static_cast<std::int64_t>(cpu_ns_.load(std::memory_order_relaxed));
  return left > 0 ? left : 0;
}

void process::end_turn(std::int64_t turn_ns, std::int64_t prompt_ns) {
  // A turn that yielded when asked (or sooner) ends the heavy streak (note_held).
  if (turn_ns < prompt_ns && heavy_.load(std::memory_order_relaxed))
    heavy_.store(false, std::memory_order_relaxed);
  std::uint64_t used =
      cpu_ns_.load(std::memory_order_relaxed) + static_cast<std::uint64_t>(turn_ns);
  cpu_ns_.store(used, std::memory_order_relaxed);
  double limit = ctx_->limits.cpu;
  if (limit > 0 && static_cast<double>(used) > limit * 1e9)
    over_cpu_.store(true, std::memory_order_relaxed);
}

// A kill that arrived during the turn ends the process as killed even if the
// script then returned (or called process.exit): a killed process never exits normal.
exit_reason process::unless_killed(exit_reason r) const {
  if (auto k = kill_reason_.load(std::memory_order_acquire)) return static_cast<exit_reason>(k - 1);
  return r;
}

void process::run_turn(unsigned worker_index) {
  last_worker_ = worker_index;
  if (state_.exchange(running, std::memory_order_acquire) != runnable) {
    // Two workers on one process would corrupt its Lua state: stop here.
    logger().critical("process {} scheduled while not runnable", id_.to_string());
    std::abort();
  }
  if (auto k = kill_reason_.load(std::memory_order_acquire)) {
    finish(static_cast<exit_reason>(k - 1), 0);
    return;
  }
  if (over_cpu_.load(std::memory_order_relaxed)) {
    doom(exit_reason::limit, k_cpu_exceeded);
    finish(exit_reason::limit, 0);
    return;
  }
  if (code_->compile_error) {
    exit_info info{id_, exit_reason::error, {}, *code_->compile_error};
    finish_with(info);
    return;
  }
  runner& r = *runner::current();
  r.begin_turn(this, L_, cpu_left_ns(), heavy_.load(std::memory_order_relaxed));
  int nres = 0;
  int status = L_ ? LUA_OK : start();
  if (status == LUA_OK) {
    status = lua_resume(L_, nullptr, resume_args_, &nres);
    resume_args_ = 0;
  } else {
    end_turn(r.end_turn(), r.prompt_turn_ns());
    finish_start(status);
    return;
  }
  // From here the watchdog no longer looks at this state: it may be closed.
  end_turn(r.end_turn(), r.prompt_turn_ns());
  if (status == LUA_YIELD) {
    suspend_kind why = suspend_;
    suspend_ = suspend_kind::none;
    switch (why) {
      case suspend_kind::command: after_command_yield(); return;
      case suspend_kind::preempt:
        scheduler::counters().preemptions.fetch_add(1, std::memory_order_relaxed);
        state_.store(runnable, std::memory_order_release);
        owner_.enqueue(this);
        return;
      case suspend_kind::doom: finish(doom_reason_, 0); return;
      case suspend_kind::exit: finish(unless_killed(exit_reason::normal), 0); return;
      case suspend_kind::none:
        doom(exit_reason::error, "attempt to yield from outside a coroutine");
        finish(doom_reason_, 0);
        return;
    }
  }
  if (status == LUA_OK) {
    finish(unless_killed(exit_reason::normal), nres);
  } else {
    doom_if_out_of_memory(status);
    finish(doomed() ? doom_reason_ : unless_killed(exit_reason::error), 0);
  }
}

void process::after_command_yield() {
  scheduler::counters().yields.fetch_add(1, std::memory_order_relaxed);
  if (wait_.never_opened()) {  // the first wait: tell later processes of this chunk what it took
    code_->start_bytes.store(static_cast<std::uint32_t>(heap_.carved_bytes()),
                             std::memory_order_relaxed);
  }
  auto [token, receiving] = wait_.open();
  // A kill that raced with opening the wait either found it open and claims it
  // itself, or is visible here (both sequentially consistent): none is lost.
  if (auto k = kill_reason_.load()) {
    finish(static_cast<exit_reason>(k - 1), 0);
    return;
  }
  if (std::optional<command> cmd = wait_.take_command()) {
    scheduler::counters().commands[static_cast<std::size_t>(cmd->id)].fetch_add(
        1, std::memory_order_relaxed);
    commands().submit(std::move(*cmd), completion(this, token));
  }
  // A message that arrived before the wait opened did not see it: claim now.
  if (receiving && mailbox_.has_incoming() && wait_.claim_open(wait_slot::k_receiving)) {
    wait_.store_message();
    wake();
  }
  std::uint8_t expected = running;
  if (!state_.compare_exchange_strong(expected, waiting, std::memory_order_acq_rel)) {
    // Completed while we were still running (e.g. sleep(0)): re-queue ourselves.
    state_.store(runnable, std::memory_order_release);
    owner_.enqueue(this);
  }
  // Once waiting, a completion may run this process elsewhere: touch nothing.
}

const char* process::status() const {
  switch (state_.load(std::memory_order_acquire)) {
    case runnable:
    case notified: return "runnable";
    case running: return "running";
    case waiting: return wait_.receiving() ? "receiving" : "waiting";
    default: return "done";
  }
}

std::string_view process::waiting_on() const {
  if (state_.load(std::memory_order_acquire) != waiting) return {};
  if (wait_.receiving()) return "message";
  return command_name(wait_.waiting_command());
}

process* process::target(pid to) {
  if (last_target_ && last_target_->id() == to) {
    if (!last_target_->ended()) return last_target_;
  }
  if (last_target_) last_target_->release_ref();
  last_target_ = owner_.find(to);
  return last_target_;
}

void process::complete(std::uint64_t token, outcome&& result) noexcept {
  if (!wait_.claim(token)) return;  // an older wait, or a kill or message got here first
  wait_.store(std::move(result));
  wake();
}

bool process::awaits(std::uint64_t token) const noexcept { return wait_.awaits(token); }

void process::deliver(message* m) noexcept {
  mailbox_.push(m);
  if (wait_.claim_open(wait_slot::k_receiving)) {
    wait_.store_message();
    wake();
  }
}

void process::wake() {
  std::uint8_t s = state_.load(std::memory_order_acquire);
  for (;;) {
    if (s == waiting) {
      if (state_.compare_exchange_weak(s, runnable, std::memory_order_acq_rel)) {
        owner_.enqueue(this);
        return;
      }
    } else if (s == running) {
      if (state_.compare_exchange_weak(s, notified, std::memory_order_acq_rel)) return;
    } else {
      return;  // already queued, notified or done
    }
  }
}

void process::request_kill(exit_reason reason, std::string why) {
  if (!why.empty()) {
    auto* text = new std::string(std::move(why));
    std::string* none_yet = nullptr;
    if (!kill_why_.compare_exchange_strong(none_yet, text)) delete text;  // an earlier kill's
  }
  std::uint8_t none = 0;
  if (!kill_reason_.compare_exchange_strong(none, static_cast<std::uint8_t>(reason) + 1)) return;
  if (wait_.claim_open(0)) {
    wake();
  } else if (state_.load(std::memory_order_acquire) == running) {
    owner_.poke_watchdog();  // it arms the hook once the turn is past its slice
  }
}

void process::doom(exit_reason reason, const char* why) {
  if (doomed()) return;
  doom_reason_ = reason;
  doom_why_ = why;
}

void process::arm_hook(lua_State* T) { lua_sethook(T, hook_entry, LUA_MASKCOUNT, 1); }

int process::resume(lua_State* co, lua_State* L, int narg, int* nres) {
  runner* r = runner::current();
  lua_State* was = r->switch_thread(co);
  int status = lua_resume(co, L, narg, nres);
  r->switch_thread(was);
  return status;
}

namespace {
// Set while a coroutine's __close handlers run inside coroutine.close: the
// hook must not yield there even where lua_isyieldable says it could.
thread_local int t_closing = 0;
}  // namespace

int process::reset(lua_State* co) {
  runner* r = runner::current();
  lua_State* was = r->switch_thread(co);
  ++t_closing;
  int status = lua_resetthread(co);
  --t_closing;
  r->switch_thread(was);
  return status;
}

void process::poll_interrupts() {
  if (doomed()) return;
  if (auto k = kill_reason_.load(std::memory_order_acquire)) {
    auto r = static_cast<exit_reason>(k - 1);
    doom(r, r == exit_reason::shutdown ? "the scheduler is shutting down" : "killed");
  } else if (over_cpu_.load(std::memory_order_relaxed)) {
    doom(exit_reason::limit, k_cpu_exceeded);
  }
}

void process::on_hook(lua_State* L) {
  bool preempt = false;
  const std::uint64_t limit = ctx_->limits.instructions;
  if (!limit || lua_gethookcount(L) == 1) {
    // The watchdog's one-shot (or a hook mangled by racing with it): put back
    // the counter (or nothing), then act.
    if (limit) {
      lua_sethook(L, hook_entry, LUA_MASKCOUNT, k_count_step);
    } else {
      lua_sethook(L, nullptr, 0, 0);
    }
    preempt = runner::current()->take_preempt();
  } else {
    // The counter: set only under an instruction limit, after start() made
    // rare_ (which no other thread replaces once made).
    std::uint64_t used = rare_->instructions.load(std::memory_order_relaxed) + k_count_step;
    rare_->instructions.store(used, std::memory_order_relaxed);
    if (used > limit) doom(exit_reason::limit, "instruction limit exceeded");
  }
  poll_interrupts();
  if (!lua_isyieldable(L) || t_closing) {
    // Inside a C call without continuation (a metamethod, a sort comparator):
    // cannot yield here, so a doomed process raises until it reaches Lua code
    // that can yield; our pcall and coroutine.resume re-raise these errors.
    // Not doomed: keep running; the watchdog arms again next tick, and hands
    // this worker's queue to a spare if the call lasts.
    if (doomed()) luaL_error(L, "process terminating: %s", doom_why_);
    return;
  }
  if (!doomed() && !preempt) return;
  suspend_ = doomed() ? suspend_kind::doom : suspend_kind::preempt;
  lua_yield(L, 0);
}

void process::interrupt_check(lua_State* L) {
  poll_interrupts();
  if (doomed()) luaL_error(L, "process terminating: %s", doom_why_);
}

void check_interrupt(lua_State* L) {
  // A bare state (a test's) has no process: its extra space was never set.
  if (process* p = process::of(L)) p->interrupt_check(L);
}

void process::finish(exit_reason reason, int nres) {
  // Nothing here may raise or abort: the Lua calls run protected or cannot
  // fail (runtime/exit_copy.cpp), C++ memory failures become a `limit` exit.
  exit_info info{id_, reason, {}, {}};
  try {
    switch (reason) {
      case exit_reason::normal: copy_exit_results(L_, nres, ctx_->limits.exit_bytes, info); break;
      case exit_reason::error:
        if (L_ && lua_gettop(L_) > 0 && !doomed()) {
          copy_exit_error(L_, info);
        } else {
          info.err = {error_kind::runtime, doom_why_ ? doom_why_ : "error", false, {}};
        }
        break;
      case exit_reason::limit:
        info.err = {error_kind::limit, doom_why_ ? doom_why_ : "memory limit exceeded", false, {}};
        break;
      case exit_reason::killed:
      case exit_reason::shutdown: {
        auto k = kill_reason_.load();
        bool by_kill = k && static_cast<exit_reason>(k - 1) == reason;
        const std::string* why = kill_why_.load();
        info.err = {error_kind::canceled,
                    reason == exit_reason::shutdown ? "the scheduler is shutting down"
                    : why                           ? *why
                    : by_kill                       ? "killed"
                                                    : doom_why_,
                    false,
                    {}};
        break;
      }
    }
  } catch (const std::bad_alloc&) {
    info.reason = exit_reason::limit;
    info.results.clear();
    info.err = {error_kind::limit, "out of memory", false, {}};  // (fits without allocating)
  }
  finish_with(info);
}

void process::finish_with(exit_info& info) {
  try {
    info.owner = ctx_->owner;  // (who may see the exit: server/methods.cpp)
  } catch (const std::bad_alloc&) {
  }
  state_.store(done, std::memory_order_release);
  if (L_) {
    // Finalizers run during close; a doomed state makes runaway ones raise.
    if (!doomed()) doom(exit_reason::shutdown, "process ended");
    // Closing visits every object and call frame: 5 ms for a state of 64 MiB
    // of call frames. A turn for the watchdog, with no Lua thread to arm, so
    // that what waits behind it on this worker goes to a spare if it lasts.
    runner* r = runner::current();
    if (r) r->begin_turn(this, nullptr, INT64_MAX);
    if (has_finalizers_) {
      lua_close(L_);
    } else {
      // Nothing in the state holds more than its memory: run what lua_close
      // would run (the main thread's pending <close> variables), then drop
      // the arena whole instead of freeing object by object. On a state gone
      // cold that saves a cache miss per object (docs/performance.md).
      (void)lua_resetthread(L_);
    }
    if (r) r->end_turn();
    L_ = nullptr;
    heap_.reset();  // give the memory back now, not when the last reference goes
  }
  if (in_flight) {
    message::destroy(in_flight);
    in_flight = nullptr;
  }
  mailbox_.clear();        // queued messages die with the process, not with its last reference
  bound_exit_texts(info);  // what the daemon keeps of an exit is bounded
  if (last_target_) {
    last_target_->release_ref();
    last_target_ = nullptr;
  }
  wait_.abandon();  // a wait that never resumed: its continuation will not run
  try {
    signal_exit(info);
  } catch (const std::exception& e) {
    logger().error("exit signals of {} lost: {}", id_.to_string(), e.what());
  }
  owner_.retire(this, info);
}

}  // namespace luad::runtime
