-- spawn-done: spawn N processes that each send "done" to this one; timed
-- until all have been received (as Erlang's spawn_done). Returns procs/s.
local process = require("process")
local time = require("time")
local n = ...
local me = process.self()
local spawn, receive = process.spawn, process.receive
local t0 = time.monotonic()
for _ = 1, n do spawn("done.lua", me) end
for _ = 1, n do receive("done") end
return n / (time.monotonic() - t0)
