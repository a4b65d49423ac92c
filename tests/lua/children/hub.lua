-- Child: links to `n` sleepers, reports their pids to `parent`, then crashes
-- on "go", which kills every sleeper through its link.
local process = require("process")
local parent, n = ...
local kids = {}
for i = 1, n do kids[i] = assert(process.spawn_link("sleeper.lua", process.self())) end
for _ = 1, n do assert(process.receive("ready", 10)) end
process.send(parent, "kids", kids)
process.receive("go")
error("hub down")
