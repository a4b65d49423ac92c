-- process.info and process.cancel.
local process = require("process")
local me = process.self()
local mine = process.info()
assert(mine.pid == me and mine.status == "running" and mine.memory > 0)
assert(mine.mailbox == 0 and mine.trap_exits == false)
local child = assert(process.spawn("children/sleeper.lua", me))
assert(process.receive("ready", 5))
local i
for _ = 1, 100 do
  i = process.info(child)
  if i.status == "waiting" then break end
  require("time").sleep(0.002)
end
assert(i.status == "waiting", i.status)
assert(i.waiting_on == "clock.sleep", i.waiting_on)
assert(mine.waiting_on == nil, "a running process waits on nothing")
-- a process parked in receive waits on a message
local echo = assert(process.spawn("children/echo.lua", me, "hi"))
assert(process.receive("hello", 5))
for _ = 1, 100 do
  i = process.info(echo)
  if i.status == "receiving" then break end
  require("time").sleep(0.002)
end
assert(i.status == "receiving" and i.waiting_on == "message", i.status)
process.send(echo, "stop")
process.send(child, "x", 1)
process.send(child, "y", 2)
assert(process.info(child).mailbox == 2)
assert(process.kill(child))
require("time").sleep(0.02)
assert(process.info(child) == nil, "info of a dead process is nil")

-- cancel delivers a CANCEL message with the reason
assert(process.cancel(me, "time to go"))
local m = assert(process.receive("CANCEL", 1))
assert(m.payload.reason == "time to go" and m.from == me)
assert(process.cancel(me))
assert(process.receive("CANCEL", 1).payload.reason == "canceled")
return true
