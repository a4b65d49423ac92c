-- Yields for the scheduler inside user coroutines stay invisible to user code.
local time = require("time")

-- a generator that sleeps between values
local function numbers(n)
  return coroutine.wrap(function()
    for i = 1, n do
      time.sleep(0.001)
      coroutine.yield(i)
    end
  end)
end
local sum = 0
for v in numbers(5) do sum = sum + v end
assert(sum == 15, "generator sum " .. sum)

-- coroutine.resume sees only the user's yields, never the scheduler's
local co = coroutine.create(function(a)
  time.sleep(0)
  local b = coroutine.yield(a + 1)
  time.sleep(0.001)
  return b * 2
end)
local ok, v = coroutine.resume(co, 1)
assert(ok and v == 2, "first resume " .. tostring(v))
assert(coroutine.status(co) == "suspended")
ok, v = coroutine.resume(co, 10)
assert(ok and v == 20, "second resume " .. tostring(v))
assert(coroutine.status(co) == "dead")
ok, v = coroutine.resume(co)
assert(not ok and v:find("dead"), "resuming a dead coroutine fails")

-- nested coroutines, three deep, each sleeping
local function level(depth)
  return coroutine.wrap(function()
    time.sleep(0)
    if depth == 0 then
      coroutine.yield("leaf")
    else
      local inner = level(depth - 1)
      local got = inner()
      time.sleep(0.001)
      coroutine.yield(got .. "<" .. depth)
    end
  end)
end
assert(level(3)() == "leaf<1<2<3")

-- pcall around a sleep, inside and outside coroutines
assert(pcall(time.sleep, 0.001))
local okp, r = pcall(function() time.sleep(0) return "after" end)
assert(okp and r == "after")
local okx, rx = xpcall(function() time.sleep(0) error("late") end, function(m) return "handled: " .. m end)
assert(not okx and rx:find("handled: .*late"))
co = coroutine.wrap(function()
  local ok2, e = pcall(function()
    time.sleep(0.001)
    error({ code = 7 })
  end)
  coroutine.yield(ok2, e.code)
end)
local a, b = co()
assert(a == false and b == 7)

-- errors thrown across coroutines after a sleep
co = coroutine.create(function()
  time.sleep(0.001)
  error("inner failure")
end)
ok, v = coroutine.resume(co)
assert(not ok and v:find("inner failure"))
local w = coroutine.wrap(function() time.sleep(0) error("wrapped failure") end)
ok, v = pcall(w)
assert(not ok and v:find("wrapped failure"))
-- an error object that is not a string passes through unchanged
w = coroutine.wrap(function() time.sleep(0) error({ tag = "x" }) end)
ok, v = pcall(w)
assert(not ok and v.tag == "x")

-- a preempted loop inside a coroutine resumes exactly where it was
co = coroutine.wrap(function()
  local n = 0
  for i = 1, 3000000 do n = n + i end
  coroutine.yield(n)
end)
assert(co() == 3000000 * 3000001 // 2)

-- status and running behave as in plain Lua
local inner_status
co = coroutine.create(function()
  local me, main = coroutine.running()
  inner_status = coroutine.status(me)
  assert(main == false)
  assert(coroutine.isyieldable())
  time.sleep(0)
end)
assert(coroutine.resume(co))
assert(inner_status == "running")
assert(not coroutine.isyieldable(), "the main chunk is not a user coroutine")

-- a sleep inside a sort comparator cannot suspend; it fails clearly instead
local errs = {}
table.sort({ 3, 2, 1 }, function(x, y)
  local ok3, e = time.sleep(0)
  if ok3 == nil and e then errs[#errs + 1] = e.kind end
  return x < y
end)
assert(#errs > 0 and errs[1] == "invalid", "sleep in a comparator reports invalid")
return true
