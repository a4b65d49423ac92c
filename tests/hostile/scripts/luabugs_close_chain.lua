-- attack: Lua 5.4.4 bug 1e64c139: 15,000 coroutine.close calls nested through __close handlers overflow the worker's C stack (SIGSEGV)
-- expect: normal
-- The upstream reproducer (testes/cstack.lua, "chain of 'coroutine.close'")
-- with a chain long enough to crash 5.4.4 on an 8 MiB stack. The sandbox's
-- coroutine.close refuses to nest deeper than 100 resets, so the innermost
-- close fails with "C stack overflow" and every level sees that error.
local count = 0
local coro = false
for _ = 1, 15000 do
  local previous = coro
  coro = coroutine.create(function()
    local cc <close> = setmetatable({}, {__close = function()
      count = count + 1
      if previous then assert(coroutine.close(previous)) end
    end})
    coroutine.yield()  -- leaves 'cc' pending to be closed
  end)
  assert(coroutine.resume(coro))
end
local ok, msg = coroutine.close(coro)
assert(not ok and tostring(msg):find("C stack overflow"), tostring(msg))
assert(count > 10 and count <= 101, "nested closes: " .. count)
-- The same chain through coroutine.wrap's error path (a reset too).
local wrapped = false
for _ = 1, 2000 do
  local previous = wrapped
  wrapped = coroutine.wrap(function()
    local cc <close> = setmetatable({}, {__close = function()
      if previous then pcall(previous) end
    end})
    coroutine.yield()
    error("end of link")
  end)
  wrapped()
end
assert(not pcall(wrapped))
return count
