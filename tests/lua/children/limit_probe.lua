-- Child for scheduler_test.cpp's context test: announces itself to the process
-- registered as "probe", waits for "go", then allocates far past a small
-- memory limit (so it ends with reason "limit" if it inherited one).
local process = require("process")
process.send(process.whereis("probe"), "started")
process.receive("go")
local t = {}
for i = 1, 1e7 do t[i] = ("x"):rep(64) .. i end
return "survived"
