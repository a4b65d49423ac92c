-- Yields to the scheduler at its top level: a sleep, then a receive.
local time = require("time")
local process = require("process")
time.sleep(0.01)
time.after(0.01, "go", "ping")
local m = assert(process.receive("go", 5))
return { slept = true, got = m.payload }
