// The bounded table functions (runtime/bounded_table.cpp) against stock Lua
// 5.4.4: the same results, the same order of equal elements, the same
// comparator calls and the same error messages, over generated and edge cases.
#include <doctest/doctest.h>

#include <sstream>
#include <string>

#include "runtime/bounded_lib.hpp"
#include "tests/lua_state.hpp"

namespace {

using luad::test::lua;

// Builds one long transcript of what sort, concat, insert, remove and move
// returned, raised and called; a deterministic generator, so both states see
// the same inputs.
constexpr const char* k_transcript = R"lua(
local out = {}
local function say(...) local t = table.pack(...)
  for i = 1, t.n do t[i] = tostring(t[i]) end
  out[#out + 1] = table.concat(t, ' ')
end
local seed = 12345
local function rand(n) seed = (seed * 1103515245 + 12345) % 2147483648; return seed % n + 1 end
local function try(f, ...) local ok, err = pcall(f, ...); if not ok then say('error', err) end end
local function dump(t, n)
  local parts = {}
  for i = 1, n do local v = t[i]; parts[i] = type(v) == 'table' and (v.k .. '/' .. v.id) or tostring(v) end
  say(table.concat(parts, ','))
end

-- Sort: sizes around the small-interval cases and past the random-pivot limit.
for _, n in ipairs({0, 1, 2, 3, 4, 5, 7, 16, 99, 100, 101, 257, 1000, 3000}) do
  local nums, recs = {}, {}
  for i = 1, n do nums[i] = rand(50); recs[i] = {k = rand(10), id = i} end
  table.sort(nums); dump(nums, n)
  local calls = 0
  table.sort(recs, function(a, b) calls = calls + 1; return a.k < b.k end)
  dump(recs, n); say('calls', calls)
  local words = {}
  for i = 1, n do words[i] = string.char(96 + rand(26), 96 + rand(26)) end
  table.sort(words, function(a, b) return a > b end); dump(words, n)
end
-- Sorted, reversed and constant inputs (the quicksort's bad cases). The
-- comparator calls are not compared: an unbalanced split makes both sorts pick
-- time-seeded random pivots.
for _, make in ipairs({function(i) return i end, function(i) return -i end, function() return 7 end}) do
  local t = {}
  for i = 1, 5000 do t[i] = make(i) end
  local calls = 0
  table.sort(t, function(a, b) calls = calls + 1; return a < b end)
  say(calls > 0, t[1], t[2500], t[5000])
end
-- Through metamethods: a proxy whose __index and __newindex are Lua.
do
  local store = {5, 3, 9, 1, 7}
  local log = {}
  local proxy = setmetatable({}, {__len = function() return #store end,
    __index = function(_, i) log[#log + 1] = 'r' .. i; return store[i] end,
    __newindex = function(_, i, v) log[#log + 1] = 'w' .. i; store[i] = v end})
  table.sort(proxy); dump(store, 5); say(table.concat(log, ','))
end
-- Errors, in the order and words of ltablib.
try(table.sort, {3, 1, 2}, 'up')
try(table.sort, {3, 1, 'x'})
try(table.sort, {5, 4, 3, 2, 1, 6, 7, 8}, function() return true end)
try(table.sort, setmetatable({}, {__len = function() return math.maxinteger end, __index = rawget, __newindex = rawset}))
try(table.sort, 7)
try(table.sort, setmetatable({}, {__index = {}}))
table.sort({2, 1}, nil)

-- Concat.
say(table.concat({}), table.concat({1, 2.5, 'x'}), table.concat({'a', 'b', 'c'}, ', '))
say(table.concat({'a', 'b', 'c'}, '-', 2), table.concat({'a', 'b', 'c'}, '-', 2, 3), table.concat({'a'}, '-', 3, 2))
say(table.concat(setmetatable({}, {__len = function() return 3 end, __index = function(_, i) return i * 2 end}), '+'))
try(table.concat, {1, {}, 3})
try(table.concat, {1, 2}, '', 1, 3)
try(table.concat, {1, 2}, {})
try(table.concat, 'abc')
try(table.concat, {}, '', math.maxinteger - 1, math.maxinteger)

-- Insert, remove, move (ported earlier; kept honest here too).
do
  local t = {1, 2, 3}
  table.insert(t, 4); table.insert(t, 1, 0); table.insert(t, 3, 'm'); dump(t, 6)
  say(table.remove(t), table.remove(t, 1), table.remove(t, 2), table.remove({}), table.remove({}, 0))
  dump(t, 3)
  try(table.insert, t, 9, 'x'); try(table.insert, t, 1, 2, 3); try(table.remove, t, 7)
  dump(table.move({1, 2, 3, 4, 5}, 2, 4, 1), 5); dump(table.move({1, 2, 3, 4, 5}, 1, 3, 3), 5)
  dump(table.move({1, 2, 3}, 1, 3, 2, {}), 4)
  try(table.move, {}, -1, math.maxinteger, 1); try(table.move, {}, 1, 2, math.maxinteger)
end
return table.concat(out, '\n')
)lua";

std::string transcript(lua& state) {
  state.eval(k_transcript);
  std::string text = lua_tostring(state.L, -1);
  lua_pop(state.L, 1);
  return text;
}

}  // namespace

TEST_CASE("the bounded table functions agree with stock Lua: results, tie order, calls, errors") {
  lua stock, ours;
  lua_getglobal(ours.L, "table");
  luad::runtime::install_bounded_table(ours.L, -1);
  lua_getfield(ours.L, -1, "sort");
  lua_getglobal(stock.L, "table");
  lua_getfield(stock.L, -1, "sort");
  bool replaced = lua_tocfunction(ours.L, -1) != lua_tocfunction(stock.L, -1);
  REQUIRE(replaced);
  lua_settop(ours.L, 0);
  lua_settop(stock.L, 0);

  std::string a = transcript(stock);
  std::string b = transcript(ours);
  CHECK(a.size() > 10000);  // the transcript really ran every case
  CHECK(a.find("invalid order function for sorting") != std::string::npos);
  CHECK(a.find("array too big") != std::string::npos);
  // Compared line by line, so a failure shows the one case that differs.
  std::istringstream sa(a), sb(b);
  std::string la, lb;
  int line = 0, differing = 0;
  while (std::getline(sa, la)) {
    ++line;
    if (!std::getline(sb, lb)) lb = "<missing>";
    if (la != lb && ++differing <= 3) {
      INFO("transcript line " << line);
      CHECK(la.substr(0, 300) == lb.substr(0, 300));
    }
  }
  CHECK(differing == 0);
  CHECK(!std::getline(sb, lb));  // ours said no more than stock
}
