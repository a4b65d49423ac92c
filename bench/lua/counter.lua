-- Receives `n` messages, then tells `parent` "done".
local process = require("process")
local parent, n = ...
local receive = process.receive
for _ = 1, n do receive() end
process.send(parent, "done")
