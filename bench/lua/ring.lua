-- ring: P processes in a ring pass an integer token P*R times (as Erlang's
-- ring.escript). Returns messages/s and the set-up time in seconds.
local process = require("process")
local time = require("time")
local p, r = ...
local me = process.self()
local t_setup = time.monotonic()
local nodes = {}
for i = 1, p do nodes[i] = assert(process.spawn("ring_node.lua", me)) end
for i = 1, p do process.send(nodes[i], "next", nodes[i % p + 1]) end
local setup = time.monotonic() - t_setup
local t0 = time.monotonic()
process.send(nodes[1], "token", p * r)
assert(process.receive("done"))
local dt = time.monotonic() - t0
return p * r / dt, setup
