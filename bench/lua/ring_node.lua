-- A ring node: learns its successor, then passes the token on, decremented;
-- whoever sees 0 tells the ring's creator.
local process = require("process")
local parent = ...
local send, recv = process.send, process.recv
local _, nxt = recv("next")
while true do
  local _, t = recv("token")
  if t == 0 then
    send(parent, "done")
  else
    send(nxt, "token", t - 1)
  end
end
