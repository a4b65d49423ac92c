-- Child for store_postgres_test.cpp: increments "n" `count` times, retrying
-- what fails as retryable (a lost conflict, a server restart), then tells its
-- parent how many increments were acknowledged.
local process = require("process")
local store = require("store")
local parent, count = ...
local acked = 0
for _ = 1, count do
  while true do
    local v, err = store.incr("n")
    if v then
      acked = acked + 1
      break
    end
    if not err.retryable then error(tostring(err)) end
  end
end
process.send(parent, "acked", acked)
