-- fib: recursive fib(N) (default 32), CPU-bound calls and integer adds with
-- no luad module, so the same file runs in luad and in the stock lua5.4
-- (luad_bench --only cpu_peer times both from outside). Returns fib(N).
local n = math.tointeger(tonumber((...))) or 32

local function fib(k)
  if k < 2 then
    return k
  end
  return fib(k - 1) + fib(k - 2)
end

return fib(n)
