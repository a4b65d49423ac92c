-- Links, monitors and trapped exits.
local process = require("process")
local me = process.self()

-- a monitor sees an abnormal exit, with its ref and the structured reason
local pid, ref = process.spawn_monitor("children/crasher.lua")
assert(pid and type(ref) == "number")
process.send(pid, "go")
local m = assert(process.receive("DOWN", 5))
assert(m.from == pid and m.payload.ref == ref, "DOWN names the pid and the ref")
assert(m.payload.reason == "error" and m.payload.kind == "runtime")
assert(m.payload.message:find("crashed on purpose"))

-- a normal exit is reported too
pid, ref = process.spawn_monitor("children/crasher.lua")
process.send(pid, "quit")
m = assert(process.receive("DOWN", 5))
assert(m.payload.reason == "normal" and m.payload.kind == nil)

-- monitoring a dead pid gives DOWN at once; demonitor stops a DOWN
ref = process.monitor(pid)
m = assert(process.receive("DOWN", 1))
assert(m.payload.ref == ref and m.payload.reason == "noproc")
pid = assert(process.spawn("children/crasher.lua"))
ref = process.monitor(pid)
assert(process.demonitor(pid, ref) == true)
process.send(pid, "go")
assert(process.receive("DOWN", 0.05) == nil, "no DOWN after demonitor")

-- trapping exits: a linked child's exit arrives as EXIT instead of killing us
assert(process.trap_exits(true) == false)
pid = assert(process.spawn_link("children/crasher.lua"))
process.send(pid, "go")
m = assert(process.receive("EXIT", 5))
assert(m.from == pid and m.payload.reason == "error")
pid = assert(process.spawn_link("children/crasher.lua"))
process.send(pid, "quit")
m = assert(process.receive("EXIT", 5))
assert(m.from == pid and m.payload.reason == "normal")
local ok, err = process.link("0.999999999")
assert(ok == nil and err.kind == "not_found")
assert(process.trap_exits(false) == true)

-- unlink: the child's crash no longer concerns us
pid = assert(process.spawn_link("children/crasher.lua"))
assert(process.unlink(pid))
process.send(pid, "go")
require("time").sleep(0.05)

-- a link storm: a hub linked to 300 sleepers crashes, and every sleeper dies
local hub = assert(process.spawn("children/hub.lua", me, 300))
local kids = assert(process.receive("kids", 10)).payload
assert(#kids == 300)
local refs = {}
for i, k in ipairs(kids) do refs[process.monitor(k)] = i end
process.send(hub, "go")
local killed = 0
for _ = 1, 300 do
  m = assert(process.receive("DOWN", 10), "a sleeper did not go down")
  assert(refs[m.payload.ref] and m.payload.reason == "killed", m.payload.reason)
  assert(m.payload.message:find("linked process"), m.payload.message)
  killed = killed + 1
end
assert(killed == 300)
-- a broken or missing script is a process that ends with a clear reason
pid, ref = process.spawn_monitor("children/broken.lua")
m = assert(process.receive("DOWN", 5))
assert(m.payload.reason == "error" and m.payload.kind == "syntax", m.payload.kind)
pid, ref = process.spawn_monitor("children/missing.lua")
m = assert(process.receive("DOWN", 5))
assert(m.payload.reason == "error" and m.payload.kind == "not_found", m.payload.kind)
return true
