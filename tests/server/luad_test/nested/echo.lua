-- Helper of spawn_beside_test.lua: a script spawned beside the test.
local process = require("process")
process.send((...), "echo", "from nested/echo.lua")
