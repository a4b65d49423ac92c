// patterns_*: the bounded string.find/match/gmatch/gsub (runtime/bounded_lib)
// against stock Lua 5.4.4 on ordinary patterns, in two bare states.
#include <chrono>
#include <string>

#include "bench/benchmarks.hpp"
#include "runtime/bounded_lib.hpp"
#include "runtime/lua.hpp"

namespace luad::bench {

namespace {

// Each call is a short, ordinary use: a word scan, a trim, a key=value match.
constexpr const char* k_work = R"lua(
  local text = ("the quick brown fox = jumps over 42 lazy dogs; "):rep(20)
  local n = 0
  for _ = 1, ... do
    n = n + select(2, text:gsub("%w+", "%0"))
    for k, v in text:gmatch("(%w+) = (%w+)") do n = n + #k + #v end
    n = n + (text:find("lazy", 1, true) or 0) + (text:find("%d+") or 0)
    n = n + #(("  padded value  "):match("^%s*(.-)%s*$"))
  end
  return n
)lua";

double seconds_for(bool bounded, int rounds) {
  lua_State* L = luaL_newstate();
  *static_cast<void**>(lua_getextraspace(L)) = nullptr;  // no process
  luaL_openlibs(L);
  if (bounded) {
    lua_getglobal(L, "string");
    runtime::install_bounded_string(L, -1);
    lua_pop(L, 1);
  }
  luaL_loadstring(L, k_work);
  lua_pushinteger(L, rounds);
  auto t0 = std::chrono::steady_clock::now();
  lua_call(L, 1, 1);
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  lua_close(L);
  return s;
}

}  // namespace

void bench_patterns(const options&) {
  seconds_for(true, 20);  // warm up
  const int rounds = 2000;
  double stock = 1e9, ours = 1e9;
  for (int i = 0; i < 3; ++i) {  // best of three, alternating
    stock = std::min(stock, seconds_for(false, rounds));
    ours = std::min(ours, seconds_for(true, rounds));
  }
  report("patterns_stock", rounds / stock, "rounds/s");
  report("patterns_bounded", rounds / ours, "rounds/s");
  report("patterns_ratio", ours / stock, "x time");
}

}  // namespace luad::bench
