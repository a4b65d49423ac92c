-- A durable workflow: billing cycles that survive `kill -9` of the daemon.
-- Each cycle charges the orders sent to it by name, for `period` seconds,
-- then records the cycle and continues as a new run (a fresh journal) until
-- `cycles` are done. Every charge is a store write committed with its
-- journal entry: after a crash the run replays and no order is charged twice.
-- (docs/workflows.md; the daemon's test: tests/server/daemon_workflow_durable_test.cpp.)
--
--   [[workflow]]                         # in luad.toml
--   name = "billing"
--   script = "../examples/billing.lua"
--   durable = true
--   args = ["1", "0", "60", "12"]        # cycle, total so far, period (s), cycles
--   permissions = ["store:billing"]
--
--   $ luad send billing order '{"id": "o-1", "cents": 1250}'
--   $ luad workflows                     # the runs, one per cycle
--   $ luad workflows history RUN         # what a cycle did, step by step
local process, store, workflow = require("process"), require("store"), require("workflow")

local cycle, total, period, cycles = ...
cycle, total = tonumber(cycle) or 1, tonumber(total) or 0
period, cycles = tonumber(period) or 60, tonumber(cycles) or 12

-- A replay registers the name again: senders reach the run's new process.
process.register("billing")

local function charge(order)
  assert(type(order) == "table" and type(order.id) == "string" and math.type(order.cents) ==
             "integer", "an order is {id = string, cents = integer}")
  assert(store.incr("charged:" .. order.id, order.cents))
  total = total + order.cents
end

-- Orders until the cycle's deadline (workflow.now is journaled: a replay
-- sees the same times and takes the same branches).
local deadline = workflow.now() + period
while true do
  local left = deadline - workflow.now()
  if left <= 0 then break end
  local msg = process.receive("order", left)
  if msg then charge(msg.payload) end
end
-- Orders that came in at the deadline: charged in this cycle (those still
-- unreceived at continue_as_new would go on to the next run's inbox).
while true do
  local msg = process.receive("order", 0)
  if not msg then break end
  charge(msg.payload)
end

-- A change made after runs were under way: old histories replay as version 0.
if workflow.version("record-cycle", 0, 1) >= 1 then
  assert(store.set("cycle:" .. cycle, {total = total, at = workflow.now()}))
end

if cycle < cycles then workflow.continue_as_new(cycle + 1, total, period, cycles) end
return total
