-- One writer of store_burst.lua: writes prefix.1, prefix.2, ... and logs
-- "acked <key>" after each write returns (that is, once it is durable).
local store = require("store")
local log = require("log")
local prefix = ...
local i = 0
while true do
  i = i + 1
  local key = prefix .. "." .. i
  assert(store.set(key, i))
  log.info("acked " .. key)
end
