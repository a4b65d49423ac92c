-- Fixture of tests/server/test_runner_test.cpp: a test in a subfolder spawns a
-- script beside itself and requires a module beside itself.
local test = require("test")
local process = require("process")
local T = {}
function T.test_spawns_and_requires_beside_itself()
  test.equal(require("nested.helper").answer, 42)
  process.spawn("echo.lua", process.self())
  test.equal(test.receive("echo").payload, "from nested/echo.lua")
end
return T
