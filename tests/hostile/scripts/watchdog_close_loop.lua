-- attack: a __close handler that loops while coroutine.close closes its coroutine (runs on that coroutine's state, inside a C call)
-- expect: kill
local co = coroutine.create(function()
  local guard <close> = setmetatable({}, { __close = function() while true do end end })
  coroutine.yield()
  return guard
end)
coroutine.resume(co)
coroutine.close(co)
return "closed"
