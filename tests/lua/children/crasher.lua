-- Child: waits for "go", then fails with an error (or returns if told "quit").
local process = require("process")
local m = process.receive({ "go", "quit" })
if m.topic == "quit" then return "bye" end
error("crashed on purpose")
