-- Names, kill and send by name.
local process = require("process")
local me = process.self()
assert(process.whereis("nobody") == nil)
assert(process.register("tester"))
assert(process.whereis("tester") == me)
local ok, err = process.register("again")
assert(ok == nil and err.kind == "invalid" and err.message:find("already registered"))
ok, err = pcall(process.register, "0.5")
assert(not ok and err:find("look like a pid"))

local child = assert(process.spawn("children/sleeper.lua", me, "napper"))
assert(process.receive("ready", 5))
assert(process.whereis("napper") == child)
assert(process.unregister())
ok, err = process.register("napper")
assert(ok == nil and err.message:find("taken by " .. tostring(child)), err and err.message)
assert(process.register("tester"))

-- send by name reaches the process; an unknown name is a dead letter, not an error
assert(process.send("tester", "note", 1))
assert(process.receive("note", 1).payload == 1)
assert(process.send("no such name", "x", 1))

-- kill ends the child and frees its name
assert(process.kill("napper", "enough") == true)
for _ = 1, 200 do
  if process.whereis("napper") == nil then break end
  require("time").sleep(0.005)
end
assert(process.whereis("napper") == nil, "a name vanishes when its process dies")
assert(process.kill(child) == false, "killing a dead pid reports false")

assert(process.unregister() == true)
assert(process.whereis("tester") == nil)
assert(process.unregister() == false)
return true
