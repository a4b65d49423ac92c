-- The example workflow of configs/luad.toml: counts ticks in the store every
-- `interval` seconds (its first argument), so the count survives restarts.
local store = require("store")
local time = require("time")
local log = require("log")
local interval = tonumber((...)) or 1
while true do
  local n = assert(store.incr("ticks"))
  log.info("tick", {n = n})
  time.sleep(interval)
end
