-- Supervisors: restart policies, strategies, intensity.
local process = require("process")
local supervisor = require("supervisor")
assert(process.register("sup_test"))

local function started(n)
  local got = {}
  for _ = 1, n do
    local m = assert(process.receive("started", 5), "a child did not start")
    got[m.payload.name] = m.payload.pid
  end
  return got
end

local function children_of(sup)
  process.send(sup, "which_children")
  local list = assert(process.receive("children", 5)).payload
  local by = {}
  for _, c in ipairs(list) do by[c.name] = c end
  return by
end

-- one_for_one: only the crashed child is restarted
local sup = assert(supervisor.start({
  strategy = "one_for_one", intensity = 5, period = 10, backoff = { initial = 0.01 },
  children = {
    { name = "a", script = "children/flaky.lua", args = { "a" } },
    { name = "b", script = "children/flaky.lua", args = { "b" } },
  },
}))
local first = started(2)
process.send(first.a, "crash")
local again = started(1)
assert(again.a and again.a ~= first.a, "a restarted with a new pid")
local kids = children_of(sup)
assert(kids.a.restarts == 1 and kids.b.restarts == 0 and kids.b.pid == first.b)
process.send(sup, "stop")

-- transient: a normal exit is not restarted, a crash is
sup = assert(supervisor.start({
  backoff = { initial = 0.01 },
  children = { { name = "t", script = "children/flaky.lua", args = { "t" }, restart = "transient" } },
}))
local t = started(1).t
process.send(t, "crash")
t = started(1).t
process.send(t, "quit")
assert(process.receive("started", 0.1) == nil, "a transient child that quit stays down")
assert(children_of(sup).t.pid == nil)
process.send(sup, "stop")

-- one_for_all: one crash restarts both
sup = assert(supervisor.start({
  strategy = "one_for_all", backoff = { initial = 0.01 },
  children = {
    { name = "x", script = "children/flaky.lua", args = { "x" } },
    { name = "y", script = "children/flaky.lua", args = { "y" } },
  },
}))
first = started(2)
process.send(first.x, "crash")
again = started(2)
assert(again.x ~= first.x and again.y ~= first.y, "both restarted")
process.send(sup, "stop")

-- intensity: too many restarts in the period and the supervisor gives up (its
-- link would take us down with it, so trap that as an EXIT message)
process.trap_exits(true)
sup = assert(supervisor.start({
  intensity = 2, period = 10, backoff = { initial = 0.001 },
  children = { { name = "c", script = "children/flaky.lua", args = { "c" } } },
}))
local ref = process.monitor(sup)
for _ = 1, 3 do process.send(started(1).c, "crash") end
local down = assert(process.receive("DOWN", 5), "the supervisor should give up")
assert(down.payload.ref == ref and down.payload.reason == "error")
assert(down.payload.message:find("gave up"), down.payload.message)
local exit
repeat  -- earlier supervisors' normal exits may be queued first
  exit = assert(process.receive("EXIT", 5))
until exit.from == sup
assert(exit.payload.reason == "error")

-- a bad spec is refused
local ok, err = pcall(supervisor.start, "nope")
assert(not ok and err:find("table expected"))
return true
