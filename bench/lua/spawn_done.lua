-- spawn-done: spawn N processes that each send "done" to this one; timed
-- until all have been received (as Erlang's spawn_done). Returns procs/s.
local process = require("process")
local time = require("time")
local n = ...
local me = process.self()
local spawn, recv = process.spawn, process.recv
local t0 = time.monotonic()
for _ = 1, n do spawn("done.lua", me) end
for _ = 1, n do recv("done") end
return n / (time.monotonic() - t0)
