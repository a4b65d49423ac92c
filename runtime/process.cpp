// Process lifecycle: the counting allocator, start in protected mode, one turn
// of execution, the wake/claim protocol for completions and kills, and exit.
#include "runtime/process.hpp"

#include <cstdlib>
#include <cstring>
#include <new>
#include <optional>

#include <spdlog/spdlog.h>

#include "runtime/logging.hpp"
#include "runtime/lua_value.hpp"
#include "runtime/message_codec.hpp"
#include "runtime/sandbox.hpp"
#include "runtime/scheduler.hpp"
#include "runtime/worker.hpp"
#include "runtime/yield.hpp"

namespace luad::runtime {

namespace {

// The count hook: accounts instructions, enforces limits and kills, preempts.
void on_count(lua_State* L, lua_Debug*) { process::of(L)->count_hook(L); }

struct chunk_reader {
  const std::string* text;
  bool done;
};

const char* read_chunk(lua_State*, void* ud, std::size_t* size) {
  auto* r = static_cast<chunk_reader*>(ud);
  if (r->done) return nullptr;
  r->done = true;
  *size = r->text->size();
  return r->text->data();
}

}  // namespace

context_ptr intern_context(process_context&& c) {
  thread_local context_ptr last;
  if (!last || !(*last == c)) last = std::make_shared<const process_context>(std::move(c));
  return last;
}

process::process(scheduler& owner, pid id, chunk_ptr code, spawn_options&& opts)
    : owner_(owner),
      id_(id),
      code_(std::move(code)),
      ctx_(opts.context ? std::move(opts.context) : intern_context(std::move(opts.ctx))) {
  if (!opts.args.empty() || !opts.packed_args.empty())
    start_args_.reset(new start_args{std::move(opts.args), std::move(opts.packed_args)});
  if (opts.on_exit) {
    rare_ = std::make_unique<rare>();
    rare_->on_exit = std::move(opts.on_exit);
  }
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
    if (ptr) p->heap_.release(ptr, osize);
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
  chunk_reader reader{&p->code_->bytecode, false};
  if (lua_load(L, read_chunk, &reader, p->code_->name.c_str(), "b") != LUA_OK) {
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

bool process::start() {
  if (code_->compile_error) {
    exit_info info{id_, exit_reason::error, {}, *code_->compile_error};
    finish_with(info);
    return false;
  }
  heap_.reserve_first(code_->start_bytes.load(std::memory_order_relaxed), memory_limit());
  L_ = lua_newstate(&process::allocate, this);
  if (!L_) {
    exit_info info{id_,
                   exit_reason::limit,
                   {},
                   {error_kind::limit, "memory limit: cannot create the Lua state", false, {}}};
    finish_with(info);
    return false;
  }
  *static_cast<process**>(lua_getextraspace(L_)) = this;
  lua_pushcfunction(L_, &process::start_protected);
  int status = lua_pcall(L_, 0, LUA_MULTRET, 0);
  if (status != LUA_OK) {
    exit_reason r =
        (status == LUA_ERRMEM || last_alloc_refused_) ? exit_reason::limit : exit_reason::error;
    exit_info info{id_, r, {}, to_error(L_, -1)};
    if (r == exit_reason::limit) info.err.kind = error_kind::limit;
    finish_with(info);
    return false;
  }
  start_args_.reset();
  lua_sethook(L_, on_count, LUA_MASKCOUNT,
              static_cast<int>(ctx_->limits.turn ? ctx_->limits.turn : 10000));
  resume_args_ = lua_gettop(L_) - 1;
  return true;
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
  if (!L_ && !start()) return;
  int nres = 0;
  int status = lua_resume(L_, nullptr, resume_args_, &nres);
  resume_args_ = 0;
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
      case suspend_kind::exit: finish(exit_reason::normal, 0); return;
      case suspend_kind::none:
        doom(exit_reason::error, "attempt to yield from outside a coroutine");
        finish(doom_reason_, 0);
        return;
    }
  }
  if (status == LUA_OK) {
    finish(exit_reason::normal, nres);
  } else {
    doom_if_out_of_memory(status);
    finish(doomed() ? doom_reason_ : exit_reason::error, 0);
  }
}

void process::after_command_yield() {
  scheduler::counters().yields.fetch_add(1, std::memory_order_relaxed);
  if (wait_.never_opened()) {  // the first wait: tell later processes of this chunk what it took
    code_->start_bytes.store(static_cast<std::uint32_t>(heap_.small_bytes()),
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
    owner_.commands().submit(std::move(*cmd), completion(this, token));
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
  if (wait_.claim_open(0)) wake();
}

void process::doom(exit_reason reason, const char* why) {
  if (doomed()) return;
  doom_reason_ = reason;
  doom_why_ = why;
}

void process::count_hook(lua_State* L) {
  const limits& lim = ctx_->limits;
  std::uint64_t used = instructions() + lim.turn;
  instructions_.store(used, std::memory_order_relaxed);
  if (!doomed()) {
    if (auto k = kill_reason_.load(std::memory_order_acquire)) {
      auto r = static_cast<exit_reason>(k - 1);
      doom(r, r == exit_reason::shutdown ? "the scheduler is shutting down" : "killed");
    } else if (lim.instructions && used > lim.instructions) {
      doom(exit_reason::limit, "instruction limit exceeded");
    }
  }
  if (!lua_isyieldable(L)) {
    // Inside a C call without continuation (a metamethod, a sort comparator):
    // cannot yield here, so a doomed process raises until it reaches Lua code
    // that can yield; our pcall and coroutine.resume re-raise these errors.
    if (doomed()) luaL_error(L, "process terminating: %s", doom_why_);
    return;
  }
  suspend_ = doomed() ? suspend_kind::doom : suspend_kind::preempt;
  lua_yield(L, 0);
}

void process::finish(exit_reason reason, int nres) {
  exit_info info{id_, reason, {}, {}};
  switch (reason) {
    case exit_reason::normal: {
      int base = lua_gettop(L_) - nres + 1;
      std::string why;
      for (int i = 0; i < nres; ++i) {
        value v;
        if (!to_value(L_, base + i, v, why)) {
          info.reason = exit_reason::error;
          info.results.clear();
          info.err = {
              error_kind::invalid,
              "return value #" + std::to_string(i + 1) + " cannot leave the process: " + why,
              false,
              {}};
          break;
        }
        info.results.push_back(std::move(v));
      }
      break;
    }
    case exit_reason::error:
      if (L_ && lua_gettop(L_) > 0 && !doomed()) {
        info.err = to_error(L_, -1);
        luaL_traceback(L_, L_, nullptr, 0);
        info.err.traceback = lua_tostring(L_, -1);
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
  finish_with(info);
}

void process::finish_with(exit_info& info) {
  state_.store(done, std::memory_order_release);
  if (L_) {
    // Finalizers run during close; a doomed state makes runaway ones raise.
    if (!doomed()) doom(exit_reason::shutdown, "process ended");
    lua_close(L_);
    L_ = nullptr;
    heap_.reset();  // give the chunks back now, not when the last reference goes
  }
  if (in_flight) {
    message::destroy(in_flight);
    in_flight = nullptr;
  }
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
