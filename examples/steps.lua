-- A durable run that takes its time: `rounds` steps, each a store increment
-- and a sleep. Submit it with `--durable` to a cluster (docs/cluster.md) and
-- kill its node: another node continues it by replay, and the counter ends
-- at `rounds`, never doubled.
--
--   $ luad submit --durable examples/steps.lua job-1 30 1
--   $ luad cluster                        # which node runs it
local store, time = require("store"), require("time")

local name, rounds, pause = ...
name = name or "job"
rounds = tonumber(rounds) or 30
pause = tonumber(pause) or 1
for _ = 1, rounds do
  store.incr(name, 1)
  time.sleep(pause)
end
return store.get(name)
