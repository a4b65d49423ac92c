-- Helper of fakes_flood_test.lua: computes, sleeps a virtual second, reports.
local process = require("process")
local time = require("time")
local parent = ...
local x = 0
for i = 1, 3e6 do x = x + i % 7 end
time.sleep(1)
process.send(parent, "done", "done")
