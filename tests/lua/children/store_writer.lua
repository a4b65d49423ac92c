-- Child for store_test.cpp: writes `n` keys named prefix.i, then tells its
-- parent how many writes were acknowledged.
local process = require("process")
local store = require("store")
local parent, prefix, n = ...
local acked = 0
for i = 1, n do
  if store.set(prefix .. "." .. i, {i = i, by = prefix}) then acked = acked + 1 end
end
process.send(parent, "done", acked)
