-- A ring node: learns its successor, then passes the token on, decremented;
-- whoever sees 0 tells the ring's creator.
local process = require("process")
local parent = ...
local send, receive = process.send, process.receive
local nxt = receive("next").payload
while true do
  local t = receive("token").payload
  if t == 0 then
    send(parent, "done")
  else
    send(nxt, "token", t - 1)
  end
end
