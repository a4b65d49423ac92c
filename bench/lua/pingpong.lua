-- ping-pong: N round trips between this process and a pong process, each
-- carrying a 16-byte payload (as Erlang's pingpong.escript). Returns round trips/s.
local process = require("process")
local time = require("time")
local n = ...
local pong = assert(process.spawn("pong.lua"))
local payload = ("x"):rep(16)
local send, receive = process.send, process.receive
local t0 = time.monotonic()
for _ = 1, n do
  send(pong, "ping", payload)
  receive()
end
local dt = time.monotonic() - t0
send(pong, "stop")
return n / dt
