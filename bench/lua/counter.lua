-- Receives `n` messages, then tells `parent` "done".
local process = require("process")
local parent, n = ...
local recv = process.recv
for _ = 1, n do recv() end
process.send(parent, "done")
