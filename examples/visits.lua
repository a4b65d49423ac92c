-- A durable visit counter: each run counts itself and remembers when it ran.
--   luad run --data ./data --allow store:visits examples/visits.lua [name]
local store = require("store")
local time = require("time")
local name = ... or "anonymous"

local n = assert(store.incr("count"))
assert(store.set(("visit:%06d"):format(n), {name = name, at = time.now()}))
-- keep only the latest five visits: list them all, delete the older ones
local items = assert(store.list("visit:", {limit = 1000}))
for i = 1, #items - 5 do store.delete(items[i].key) end

local recent = {}
for i = math.max(1, #items - 4), #items do recent[#recent + 1] = items[i].value.name end
return {visits = n, recent = recent}
