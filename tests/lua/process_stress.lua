-- Receives racing with timeouts: no message is lost or delivered twice.
local process = require("process")
local time = require("time")
local me = process.self()
local kids = {}
for i = 1, 50 do kids[i] = assert(process.spawn("children/ticker.lua", me)) end
local sent = 0
for round = 1, 40 do
  for i = 1, #kids do
    if (i + round) % 3 ~= 0 then
      process.send(kids[i], "tick", round)
      sent = sent + 1
    end
  end
  time.sleep(0.0003 * (round % 4))
end
for i = 1, #kids do process.send(kids[i], "report") end
local got, timeouts = 0, 0
for _ = 1, #kids do
  local m = assert(process.receive("count", 10), "a child did not report")
  got = got + m.payload.got
  timeouts = timeouts + m.payload.timeouts
end
assert(got == sent, ("sent %d, received %d"):format(sent, got))
assert(timeouts > 0, "the timeouts should have fired at least once")
return true
