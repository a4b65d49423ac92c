-- Fixture of tests/server/test_runner_test.cpp: a test nothing can wake.
local process = require("process")
local T = {}
function T.test_waits_for_a_message_nobody_sends()
  process.receive("never")
end
return T
