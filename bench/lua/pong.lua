-- Answers every "ping" with a "pong" carrying the same payload, until "stop";
-- takes messages as pingpong.lua tells it (recv, or receive for "table").
local process = require("process")
local form = ...
local send, receive, recv = process.send, process.receive, process.recv
if form == "table" then
  while true do
    local m = receive()
    if m.topic == "stop" then return end
    send(m.from, "pong", m.payload)
  end
end
while true do
  local topic, payload, from = recv()
  if topic == "stop" then return end
  send(from, "pong", payload)
end
