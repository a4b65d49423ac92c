-- Helper of clock_test.lua: sleeps, then tells its parent how long.
local process = require("process")
local time = require("time")
local parent, seconds = ...
time.sleep(seconds)
process.send(parent, "slept", seconds)
