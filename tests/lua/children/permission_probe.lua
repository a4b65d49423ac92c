-- Used by scheduler_test: under a hook that denies sleeper.lua and all
-- cross-owner sends, checks both refusals and that the rest still works.
local process = require("process")
local other = ...
local p, err = process.spawn("sleeper.lua", process.self())
assert(p == nil and err.kind == "permission_denied", err and err.message)
local ok, e2 = process.send(other, "hi", 1)
assert(ok == nil and e2.kind == "permission_denied", e2 and e2.message)
assert(process.send(process.self(), "same owner", 1), "sends within an owner are not asked")
local c = assert(process.spawn("crasher.lua"))
process.send(c, "quit")
return true
