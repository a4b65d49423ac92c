-- one-way: N small messages to a counting receiver; timed until it has them
-- all (as Erlang's oneway figure). Returns messages/s.
local process = require("process")
local time = require("time")
local n = ...
local counter = assert(process.spawn("counter.lua", process.self(), n))
local payload = ("x"):rep(16)
local send = process.send
local t0 = time.monotonic()
for _ = 1, n do send(counter, "msg", payload) end
assert(process.receive("done"))
return n / (time.monotonic() - t0)
