-- Supervised child for supervisor.lua: reports "started" to the process named
-- "sup_test", then crashes on "crash" or returns on "quit".
local process = require("process")
local name = ...
process.send("sup_test", "started", { name = name, pid = process.self() })
local m = process.receive({ "crash", "quit" })
if m.topic == "crash" then error(name .. " crashed") end
return "quit"
