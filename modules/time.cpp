// The `time` module: sleep (yields to the clock dispatcher), now, monotonic.
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <string>

#include "modules/modules.hpp"
#include "runtime/command.hpp"
#include "runtime/lua_value.hpp"
#include "runtime/message_codec.hpp"
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

int time_now(lua_State* L) {
  auto d = std::chrono::system_clock::now().time_since_epoch();
  lua_pushnumber(L, std::chrono::duration<double>(d).count());
  return 1;
}

int time_monotonic(lua_State* L) {
  auto d = std::chrono::steady_clock::now().time_since_epoch();
  lua_pushnumber(L, std::chrono::duration<double>(d).count());
  return 1;
}

// --- timers that deliver a message -------------------------------------------

// One time.after: a clock completion that, unless canceled first, sends
// {topic, payload} to the process that set it. The Lua handle owns one reference.
class timer_message final : public runtime::completion_target {
 public:
  timer_message(runtime::scheduler& s, runtime::pid to, std::string topic, std::string payload)
      : sched_(s), to_(to), topic_(std::move(topic)), payload_(std::move(payload)) {}
  void add_ref() noexcept override { refs_.fetch_add(1, std::memory_order_relaxed); }
  void release_ref() noexcept override {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }
  void complete(std::uint64_t, runtime::outcome&& o) noexcept override {
    if (o.err || done_.exchange(true)) return;  // canceled, or the clock stopped
    if (runtime::process* p = sched_.find(to_)) {
      if (auto* m = runtime::message::make(to_, topic_, payload_)) p->deliver(m);
      p->release_ref();
    }
  }
  bool awaits(std::uint64_t) const noexcept override { return !done_.load(); }
  /// True if the timer had not fired or been canceled yet.
  bool cancel() noexcept { return !done_.exchange(true); }

 private:
  runtime::scheduler& sched_;
  runtime::pid to_;
  std::string topic_, payload_;
  std::atomic<std::uint32_t> refs_{1};
  std::atomic<bool> done_{false};
};

constexpr const char* k_timer_meta = "luad.timer";

int timer_gc(lua_State* L) {
  auto** t = static_cast<timer_message**>(luaL_checkudata(L, 1, k_timer_meta));
  if (*t) (*t)->release_ref();
  *t = nullptr;
  return 0;
}

// The C++ half of time.after: the started timer, or why not (the payload
// cannot be copied, or out of memory).
runtime::result<timer_message*> start_timer(lua_State* L, double seconds,
                                            std::string_view topic) noexcept {
  try {
    runtime::process* self = runtime::process::of(L);
    std::string payload, reason;
    if (!runtime::encode_message(L, 3, payload, reason, self->context().limits.message_bytes)) {
      return runtime::fail(runtime::error_kind::invalid, std::move(reason));
    }
    auto* t = new timer_message(self->owner(), self->id(), std::string(topic), std::move(payload));
    self->owner().commands().submit({runtime::command_id::clock_sleep, runtime::value(seconds)},
                                    runtime::completion(t));
    return t;
  } catch (...) {
    return runtime::fail(runtime::error_kind::invalid, "out of memory");
  }
}

int time_after(lua_State* L) {
  lua_Number s = luaL_checknumber(L, 1);
  luaL_argcheck(L, s >= 0 && !std::isnan(s), 1, "non-negative number of seconds expected");
  std::size_t len;
  const char* topic = luaL_checklstring(L, 2, &len);
  lua_settop(L, 3);
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
        start_timer(L, static_cast<double>(s), std::string_view(topic, len));
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
    {"now", {}, number_return, "Wall-clock time in seconds since the Unix epoch."},
    {"monotonic", {}, number_return, "Seconds from a monotonic clock, for measuring intervals."},
    {"after", after_params, after_returns,
     "After `seconds`, sends the calling process a message {topic, payload} (from itself). "
     "Returns a timer for time.cancel."},
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
