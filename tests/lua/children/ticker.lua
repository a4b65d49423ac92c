-- Child for process_stress.lua: counts "tick" messages while its receives race
-- against short timeouts; on "report" sends the count back and ends.
local process = require("process")
local parent = ...
local got, timeouts = 0, 0
while true do
  local m, err = process.receive({ "tick", "report" }, 0.0005)
  if m and m.topic == "report" then
    -- drain ticks that are still queued, then answer
    while true do
      local t = process.receive("tick", 0)
      if not t then break end
      got = got + 1
    end
    process.send(parent, "count", { got = got, timeouts = timeouts })
    return
  elseif m then
    got = got + 1
  else
    assert(err.kind == "timeout", err.kind)
    timeouts = timeouts + 1
  end
end
