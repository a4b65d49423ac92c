-- attack: timer flood: time.after(3600) with a 1 KiB payload in a loop, never stopping
-- expect: kill
-- Timers must be counted and charged per process, and die with it: after the
-- kill, none of them may stay pending in the daemon.
local time = require("time")
local payload = string.rep("t", 1024)
while true do
  time.after(3600, "tick", payload)
end
