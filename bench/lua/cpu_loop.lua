-- cpu_loop: a pure Lua loop of N iterations (an add, a multiply and a modulo
-- each), with no yields: what the hook costs CPU-bound code. Returns iterations/s.
-- Also runs under `luad run bench/lua/cpu_loop.lua N`, to A/B builds that
-- predate the benchmark.
local time = require("time")
local n = math.tointeger(tonumber((...))) or 20000000
local t0 = time.monotonic()
local x = 0
for i = 1, n do
  x = (x + i * 3) % 1000003
end
local dt = time.monotonic() - t0
return n / dt, x
