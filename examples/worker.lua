-- worker.lua: registers its name, squares numbers sent to it, and crashes on 13
-- to show the supervisor restarting it (see actors.lua).
local process = require("process")
local name = ...
process.register(name)
while true do
  local m = process.receive("square")
  if m.payload == 13 then error("13 is unlucky") end
  process.send("collector", "squared", { n = m.payload, square = m.payload * m.payload })
end
