-- Answers every "ping" with a "pong" carrying the same payload, until "stop".
local process = require("process")
local send, receive = process.send, process.receive
while true do
  local m = receive()
  if m.topic == "stop" then return end
  send(m.from, "pong", m.payload)
end
