-- Run by store_test.cpp under `luad run` and killed with SIGKILL mid-burst:
-- 50 writers store keys forever and log each one once it is acknowledged.
local process = require("process")
local log = require("log")
for w = 1, 50 do
  process.spawn("store_burst_writer.lua", "w" .. w)
end
process.receive("never")
