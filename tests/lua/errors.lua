-- The errors module as a script sees it: errors.new with its defaults and
-- checks, errors.is, and structured errors through error/pcall.
local errors = require("errors")

local kinds = {
  "invalid", "not_found", "permission_denied", "timeout", "unavailable",
  "canceled", "limit", "internal", "syntax", "runtime",
}

for _, kind in ipairs(kinds) do
  local err = errors.new(kind, "something about " .. kind)
  assert(err.kind == kind)
  assert(err.message == "something about " .. kind)
  assert(err.traceback == nil)
  assert(tostring(err) == kind .. ": something about " .. kind)
  assert(errors.is(err, kind))
  local retryable = kind == "timeout" or kind == "unavailable"
  assert(err.retryable == retryable, kind .. " retryable default")
end

-- opts.retryable overrides the default either way.
assert(errors.new("timeout", "t", {retryable = false}).retryable == false)
assert(errors.new("invalid", "i", {retryable = true}).retryable == true)
assert(errors.new("timeout", "t", {}).retryable == true)
assert(errors.new("timeout", "t", nil).retryable == true)

-- errors.is is true only for a table whose kind matches.
local err = errors.new("not_found", "no such user")
assert(errors.is(err, "not_found"))
assert(not errors.is(err, "invalid"))
assert(errors.is({kind = "limit"}, "limit"))
assert(not errors.is("not_found", "not_found"))
assert(not errors.is(nil, "not_found"))
assert(not errors.is({}, "not_found"))

-- Structured errors travel through error and pcall unchanged.
local ok, caught = pcall(error, errors.new("permission_denied", "no"))
assert(not ok and errors.is(caught, "permission_denied") and caught.message == "no")
assert(tostring(caught) == "permission_denied: no")

-- Misuse raises.
local function raises(expected, f, ...)
  local ok2, msg = pcall(f, ...)
  assert(not ok2, "expected an error")
  assert(string.find(tostring(msg), expected, 1, true), "got: " .. tostring(msg))
end
raises("bad argument #1 to 'new' (unknown error kind 'bogus')", function()
  local e = errors.new("bogus", "x")  -- not a tail call, so the message can name 'new'
  return e
end)
raises("unknown error kind 'Timeout'", errors.new, "Timeout", "x")
raises("bad argument #1", errors.new)
raises("bad argument #2", errors.new, "invalid")
raises("bad argument #3", errors.new, "invalid", "m", 5)
raises("opts.retryable must be a boolean", errors.new, "invalid", "m", {retryable = "yes"})
raises("unknown error kind 'nope'", errors.is, err, "nope")
raises("bad argument #2", errors.is, err)

return true
