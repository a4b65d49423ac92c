-- attack: loop inside a coroutine, so the running Lua thread is not the process's main state
-- expect: kill
local co = coroutine.wrap(function()
  while true do end
end)
co()
