-- Fixture of tests/server/test_runner_test.cpp: assertions that pass and fail
-- with the messages people need. Not a suite of ours: some tests fail on purpose.
local test = require("test")
local T = {}

local setups = 0
function T.setup() setups = setups + 1 end

function T.test_passes()
  test.equal({1, 2, {x = "y"}}, {1, 2, {x = "y"}})
  test.not_equal({1}, {2})
  test.truthy(0)
  test.falsy(nil)
  test.near(0.1 + 0.2, 0.3)
  test.equal(setups, 1, "setup ran once before this test")
  local e = test.errors(function() error({kind = "timeout", message = "slow"}) end, {kind = "timeout"})
  test.equal(e.message, "slow")
end

function T.test_table_diff()
  test.equal({a = 1, b = {c = 2}, e = "x"}, {a = 1, b = {c = 3}, d = 4})
end

function T.test_errors_mismatch()
  test.errors(function() error("the actual problem") end, "another problem")
end

function T.test_raises_plain()
  local t = nil
  return t.field
end

return T
