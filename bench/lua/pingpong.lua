-- ping-pong: N round trips between this process and a pong process, each
-- carrying a 16-byte payload (as Erlang's pingpong.escript). Both sides take
-- messages with process.recv (three values), or with process.receive (a msg
-- table) when the second argument is "table". Returns round trips/s.
local process = require("process")
local time = require("time")
local n, form = ...
local pong = assert(process.spawn("pong.lua", form))
local payload = ("x"):rep(16)
local send = process.send
local take = form == "table" and process.receive or process.recv
local t0 = time.monotonic()
for _ = 1, n do
  send(pong, "ping", payload)
  take()
end
local dt = time.monotonic() - t0
send(pong, "stop")
return n / dt
