-- store benchmark: `writers` processes each make `per` durable writes at once;
-- returns acknowledged writes per second (first spawn to last acknowledgement).
local process = require("process")
local time = require("time")
local writers, per = ...
local me = process.self()
local t0 = time.monotonic()
for w = 1, writers do
  assert(process.spawn("store_writer.lua", me, "w" .. w .. ".", per))
end
local acked = 0
for _ = 1, writers do acked = acked + process.receive("done", 120).payload end
return acked / (time.monotonic() - t0), acked
