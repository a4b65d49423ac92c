// The `time` module: sleep (yields to the clock dispatcher), now, monotonic.
#include <chrono>
#include <cmath>

#include "dispatcher/clock.hpp"
#include "modules/modules.hpp"
#include "runtime/lua_value.hpp"
#include "runtime/yield.hpp"

namespace luad::modules {

namespace {

using runtime::param_type;

class sleep_yield final : public runtime::pooled_yield<sleep_yield> {
 public:
  static constexpr runtime::yield_type type{"time.sleep", dispatcher::command_id::clock_sleep};
  double seconds = 0;

  dispatcher::command make_command() override {
    return {dispatcher::command_id::clock_sleep, runtime::value(seconds)};
  }
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

constexpr param_type seconds_param[] = {{"seconds", "number"}};
constexpr param_type sleep_returns[] = {{"ok", "nil"}, {"err", "luad.error?"}};
constexpr param_type number_return[] = {{"seconds", "number"}};

constexpr runtime::function_type manifest[] = {
    {"sleep", seconds_param, sleep_returns,
     "Suspends the process for `seconds` (0 yields to other processes). Returns "
     "nothing, or nil and an error if the wait was canceled."},
    {"now", {}, number_return, "Wall-clock time in seconds since the Unix epoch."},
    {"monotonic", {}, number_return, "Seconds from a monotonic clock, for measuring intervals."},
};

runtime::module_exports build() {
  return {{{"sleep", time_sleep}, {"now", time_now}, {"monotonic", time_monotonic}},
          {&sleep_yield::type}};
}

}  // namespace

extern const runtime::module_def time_module{"time", "Sleeping and clocks.",
                                             runtime::nondeterministic, manifest, build};

}  // namespace luad::modules
