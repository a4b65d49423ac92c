// The `time` module: sleep (yields to the clock dispatcher), now, monotonic,
// and message timers (after, cancel) within the process's timer limits.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <new>
#include <string>
#include <vector>

#include "modules/modules.hpp"
#include "runtime/command.hpp"
#include "runtime/lua_value.hpp"
#include "runtime/message_codec.hpp"
#include "runtime/owners.hpp"
#include "runtime/process.hpp"
#include "runtime/result.hpp"
#include "runtime/scheduler.hpp"
#include "runtime/yield.hpp"

namespace luad::modules {

namespace {

using runtime::param_type;

class sleep_yield final
    : public runtime::pooled_yield<sleep_yield, runtime::command_id::clock_sleep> {
 public:
  static constexpr const char* type_name = "time.sleep";
  double seconds = 0;

  runtime::value args() const { return runtime::value(seconds); }
  int handle_result(lua_State* L, const runtime::value&, const runtime::error* err) override {
    if (!err) return 0;
    lua_pushnil(L);
    runtime::push_error(L, *err);
    return 2;
  }
};

int time_sleep(lua_State* L) {
  lua_Number s = luaL_checknumber(L, 1);
  luaL_argcheck(L, s >= 0 && !std::isnan(s), 1, "non-negative number of seconds expected");
  sleep_yield* y = sleep_yield::acquire(L);
  y->seconds = static_cast<double>(s);
  return -1;
}

// In a durable run the clocks are recorded (a replay must see what the live
// run saw): now is workflow.now, monotonic a side effect. Under luad test's
// fakes both are commands its virtual clock answers.
int time_now(lua_State* L) {
  if (runtime::process::of(L)->own_commands()) return workflow_now_call(L);
  auto d = std::chrono::system_clock::now().time_since_epoch();
  lua_pushnumber(L, std::chrono::duration<double>(d).count());
  return 1;
}

int monotonic_now(lua_State* L) {
  auto d = std::chrono::steady_clock::now().time_since_epoch();
  lua_pushnumber(L, std::chrono::duration<double>(d).count());
  return 1;
}

// A durable run records it as a side effect (as journals already hold it);
// under luad test's fakes it is the virtual clock's.
int time_monotonic(lua_State* L) {
  runtime::process* self = runtime::process::of(L);
  if (!self->own_commands()) return monotonic_now(L);
  if (!self->durable()) return monotonic_call(L);
  lua_settop(L, 0);
  lua_pushcfunction(L, monotonic_now);
  return side_effect_call(L);
}

// --- timers that deliver a message -------------------------------------------

// One time.after: a clock completion that, unless canceled first, sends
// {topic, payload} to the process that set it. References: the clock's
// completion, the Lua handle, and the process's timer_list until it sweeps the
// timer out. The payload is freed as soon as the timer is settled (fired or
// canceled), not when the last reference goes.
class timer_message final : public runtime::completion_target {
 public:
  timer_message(runtime::scheduler& s, runtime::pid to, std::string topic, std::string payload,
                runtime::account_ptr account)
      : sched_(s),
        to_(to),
        topic_(std::move(topic)),
        payload_(std::move(payload)),
        account_(std::move(account)) {}
  // The owner's timer quota counts pending timers: given back once, when the
  // timer fires, is canceled, or dies unfired.
  ~timer_message() {
    if (account_ && !done_.load()) account_->remove_timer();
  }
  void add_ref() noexcept override { refs_.fetch_add(1, std::memory_order_relaxed); }
  void release_ref() noexcept override {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }
  void complete(std::uint64_t, runtime::outcome&& o) noexcept override {
    if (o.err || done_.exchange(true)) return;  // canceled, or the clock stopped
    if (runtime::process* p = sched_.find(to_)) {
      // Always queued (charged to the receiver's mailbox bytes): its bytes
      // were already within the sender's timer limits.
      if (auto* m = runtime::message::make(to_, topic_, payload_)) p->deliver(m);
      p->release_ref();
    }
    settled();
  }
  bool awaits(std::uint64_t) const noexcept override { return !done_.load(); }
  /// True if the timer had not fired or been canceled yet.
  bool cancel() noexcept {
    if (done_.exchange(true)) return false;
    settled();
    return true;
  }
  /// True once it fired or was canceled (its bytes are free).
  bool done() const noexcept { return done_.load(); }
  /// Bytes it holds while pending (topic and payload).
  std::size_t bytes() const noexcept { return bytes_; }

 private:
  // The one place a pending timer stops being pending (whoever set done_).
  void settled() noexcept {
    if (account_) account_->remove_timer();
    std::string().swap(topic_);
    std::string().swap(payload_);
  }

  runtime::scheduler& sched_;
  runtime::pid to_;
  std::string topic_, payload_;
  std::size_t bytes_ = topic_.size() + payload_.size();
  runtime::account_ptr account_;  // null: no timer quota
  std::atomic<std::uint32_t> refs_{1};
  std::atomic<bool> done_{false};
};

constexpr const char* k_timer_meta = "luad.timer";
constexpr const char* k_timer_list_meta = "luad.timers";
const char k_timer_list_key = 0;  // its address names the list in the registry

// A process's pending timers, kept in its Lua registry: time.after checks the
// process's limits against them, and closing the state (the process's exit)
// cancels those still pending, so that no timer outlives its process.
struct timer_list {
  std::vector<timer_message*> live;  // each holds a reference
  std::size_t bytes = 0;             // what `live` holds, an upper bound until swept
  std::size_t next_sweep = 64;

  // Drops timers that fired or were canceled.
  void sweep() noexcept {
    std::erase_if(live, [this](timer_message* t) {
      if (!t->done()) return false;
      bytes -= t->bytes();
      t->release_ref();
      return true;
    });
    next_sweep = std::max<std::size_t>(64, 2 * live.size());
  }
  // The process's own limits on pending timers (count, bytes), for one more
  // timer holding `more` bytes; swept first when it looks full.
  runtime::status admit(const runtime::limits& lim, std::size_t more) noexcept {
    auto over = [&] {
      return (lim.timers && live.size() >= lim.timers) ||
             (lim.timer_bytes && bytes + more > lim.timer_bytes);
    };
    if (over() || live.size() >= next_sweep) sweep();
    if (lim.timers && live.size() >= lim.timers)
      return runtime::fail(runtime::error_kind::limit, "too many pending timers (limits.timers = " +
                                                           std::to_string(lim.timers) + ")");
    if (lim.timer_bytes && bytes + more > lim.timer_bytes)
      return runtime::fail(runtime::error_kind::limit, "timer payloads pending would pass " +
                                                           std::to_string(lim.timer_bytes) +
                                                           " bytes (limits.timer_size)");
    return runtime::done{};
  }
};

int timer_list_gc(lua_State* L) {
  auto* list = static_cast<timer_list*>(lua_touserdata(L, 1));
  for (timer_message* t : list->live) {
    t->cancel();  // the process is ending: its timers die with it
    t->release_ref();
  }
  list->~timer_list();
  return 0;
}

// The process's timer_list, made on first use. May raise (Lua memory only):
// call before any C++ object is alive.
timer_list* timers_of(lua_State* L) {
  lua_rawgetp(L, LUA_REGISTRYINDEX, &k_timer_list_key);
  auto* list = static_cast<timer_list*>(lua_touserdata(L, -1));
  lua_pop(L, 1);
  if (list) return list;
  list = new (lua_newuserdatauv(L, sizeof(timer_list), 0)) timer_list();
  if (luaL_newmetatable(L, k_timer_list_meta)) {
    lua_pushcfunction(L, timer_list_gc);
    lua_setfield(L, -2, "__gc");
  }
  runtime::process::of(L)->note_finalizer();
  lua_setmetatable(L, -2);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &k_timer_list_key);
  return list;
}

int timer_gc(lua_State* L) {
  auto** t = static_cast<timer_message**>(luaL_checkudata(L, 1, k_timer_meta));
  if (*t) (*t)->release_ref();
  *t = nullptr;
  return 0;
}

// The C++ half of time.after: the started timer, or why not (the payload
// cannot be copied, a limit, or out of memory).
runtime::result<timer_message*> start_timer(lua_State* L, timer_list& timers, double seconds,
                                            std::string_view topic) noexcept {
  try {
    runtime::process* self = runtime::process::of(L);
    const runtime::limits& lim = self->context().limits;
    std::string payload, reason;
    if (!runtime::encode_message(L, 3, payload, reason, lim.message_bytes)) {
      return runtime::fail(runtime::error_kind::invalid, std::move(reason));
    }
    std::size_t bytes = topic.size() + payload.size();
    // Every check a new timer must pass, in turn: the process's own limits,
    // then its owner's quota.
    if (auto ok = timers.admit(lim, bytes); !ok) return ok.error();
    const runtime::account_ptr& account = self->context().account;
    if (account && !account->try_add_timer()) {
      return runtime::fail(runtime::error_kind::limit,
                           "owner " + account->owner() + " has reached its timer quota (" +
                               std::to_string(account->quotas().timers) + " pending timers)");
    }
    timer_message* t = nullptr;
    try {
      timers.live.reserve(timers.live.size() + 1);  // so that push_back below cannot throw
      t = new timer_message(self->owner(), self->id(), std::string(topic), std::move(payload),
                            account);
    } catch (...) {
      if (account) account->remove_timer();
      throw;
    }
    t->add_ref();  // the list's
    timers.live.push_back(t);
    timers.bytes += bytes;
    self->commands().submit({runtime::command_id::clock_sleep, runtime::value(seconds)},
                            runtime::completion(t));
    return t;
  } catch (const std::bad_alloc&) {
    return runtime::fail(runtime::error_kind::limit, "out of memory");
  }
}

// A durable run's replay would arm its timers again and receive their
// messages twice; its deadlines are sleeps and receive timeouts.
const runtime::error k_after_durable{
    runtime::error_kind::invalid,
    "time.after: not in a durable run (a replay would arm it again); use time.sleep, or "
    "process.receive with a timeout",
    false,
    {}};

int time_after(lua_State* L) {
  lua_Number s = luaL_checknumber(L, 1);
  luaL_argcheck(L, s >= 0 && !std::isnan(s), 1, "non-negative number of seconds expected");
  std::size_t len;
  const char* topic = luaL_checklstring(L, 2, &len);
  if (runtime::process::of(L)->durable()) {
    int n = runtime::push_failure(L, k_after_durable);
    return n < 0 ? lua_error(L) : n;
  }
  lua_settop(L, 3);
  timer_list* timers = timers_of(L);
  auto** slot = static_cast<timer_message**>(lua_newuserdatauv(L, sizeof(timer_message*), 0));
  *slot = nullptr;
  if (luaL_newmetatable(L, k_timer_meta)) {
    lua_pushcfunction(L, timer_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
  }
  lua_setmetatable(L, -2);
  int n = 1;
  {
    runtime::result<timer_message*> t =
        start_timer(L, *timers, static_cast<double>(s), std::string_view(topic, len));
    if (t) {
      *slot = *t;
    } else {
      n = runtime::push_failure(L, t.error());
    }
  }
  return n < 0 ? lua_error(L) : n;
}

int time_cancel(lua_State* L) {
  auto** t = static_cast<timer_message**>(luaL_checkudata(L, 1, k_timer_meta));
  lua_pushboolean(L, *t && (*t)->cancel());
  return 1;
}

constexpr param_type seconds_param[] = {{"seconds", "number"}};
constexpr param_type sleep_returns[] = {{"ok", "nil"}, {"err", "luad.error?"}};
constexpr param_type number_return[] = {{"seconds", "number"}};

constexpr param_type after_params[] = {
    {"seconds", "number"}, {"topic", "string"}, {"payload", "any"}};
constexpr param_type after_returns[] = {{"timer", "luad.timer?"}, {"err", "luad.error?"}};
constexpr param_type cancel_params[] = {{"timer", "luad.timer"}};
constexpr param_type cancel_returns[] = {{"canceled", "boolean"}};

constexpr runtime::function_type manifest[] = {
    {"sleep", seconds_param, sleep_returns,
     "Suspends the process for `seconds` (0 yields to other processes). Returns "
     "nothing, or nil and an error if the wait was canceled."},
    {"now",
     {},
     number_return,
     "Wall-clock time in seconds since the Unix epoch (recorded in a durable run, as "
     "workflow.now)."},
    {"monotonic",
     {},
     number_return,
     "Seconds from a monotonic clock, for measuring intervals (recorded in a durable run)."},
    {"after", after_params, after_returns,
     "After `seconds`, sends the calling process a message {topic, payload} (from itself). "
     "Returns a timer for time.cancel; nil, err(limit) past the owner's timer quota."},
    {"cancel", cancel_params, cancel_returns,
     "Cancels a timer from time.after; true if it had not fired yet."},
};

runtime::module_exports build() {
  return {{{"sleep", time_sleep},
           {"now", time_now},
           {"monotonic", time_monotonic},
           {"after", time_after},
           {"cancel", time_cancel}},
          {sleep_yield::type()}};
}

}  // namespace

extern const runtime::module_def time_module{"time", "Sleeping and clocks.",
                                             runtime::nondeterministic, manifest, build};

}  // namespace luad::modules
