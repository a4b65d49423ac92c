-- One writer of the store benchmark: n durable writes of a small table under
-- its own keys, then "done" to the parent.
local process = require("process")
local store = require("store")
local parent, prefix, n = ...
local set = store.set
for i = 1, n do
  assert(set(prefix .. i, {n = i, tag = "bench"}))
end
process.send(parent, "done", n)
