-- lateness: one process sleeps time.sleep(0.01) S times (default 1000) and
-- measures each with time.monotonic(); lateness = measured - 10 ms, in whole
-- microseconds (as Erlang's timers.escript `lateness`). Returns the p50, p99
-- and max lateness, with the escript's percentile rule:
-- lists:nth(max(1, min(L, round(Q * L))), Sorted).
local time = require("time")
local n = math.tointeger(tonumber((...))) or 1000
local sleep, monotonic = time.sleep, time.monotonic

local late = {}
for i = 1, n do
  local t0 = monotonic()
  sleep(0.01)
  local t1 = monotonic()
  late[i] = math.floor((t1 - t0) * 1e6) - 10000
end
table.sort(late)

local function pct(q)
  local rank = math.floor(q * n + 0.5) -- Erlang's round/1, for q * n >= 0
  return late[math.max(1, math.min(n, rank))]
end

return pct(0.50), pct(0.99), late[n]
