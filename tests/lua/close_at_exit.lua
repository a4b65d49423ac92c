-- A process's pending <close> variables run when it ends, however it ends:
-- its state is not closed object by object any more (runtime/process.cpp,
-- finish_with), so this is what keeps lua_close's one duty.
local process = require("process")
local me = process.self()

for _, how in ipairs({ "return", "error", "exit", "wait" }) do
  local child = assert(process.spawn("children/closer.lua", me, how))
  if how == "wait" then
    assert(process.recv("waiting", 5), "the closer did not start")
    assert(process.kill(child, "test"))
  end
  local topic, payload = process.recv("closed", 5)
  assert(topic == "closed", how .. ": its <close> variable did not run")
  assert(payload.how == how, how .. ": " .. tostring(payload.how))
  if how == "error" then
    assert(tostring(payload.err):find("boom"), "the error reaches __close: " .. tostring(payload.err))
  end
end
return true
