-- Child for process.lua: echoes every message back to its sender until "stop".
local process = require("process")
local parent, greeting = ...
process.send(parent, "hello", greeting)
while true do
  local msg = process.receive()
  if msg.topic == "stop" then return "stopped" end
  process.send(msg.from, "echo", msg.payload)
end
