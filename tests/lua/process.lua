-- The process module: pids, send, selective receive, timeouts, spawn.
local process = require("process")
local time = require("time")

local me = process.self()
assert(type(me) == "userdata")
assert(me == process.self(), "pids compare equal")
assert(tostring(me):match("^%d+%.%d+$"), "pids print as node.serial: " .. tostring(me))
local seen = { [me] = true }
assert(seen[process.self()], "pids work as table keys")

-- send to self, receive in order
assert(process.send(me, "a", 1))
assert(process.send(me, "b", { x = { 1, 2, 3 } }))
assert(process.send(tostring(me), "a", 2), "a pid's text form is accepted")
local m = process.receive()
assert(m.topic == "a" and m.payload == 1 and m.from == me)
-- selective: "b" is skipped over for the second "a", and stays queued
m = process.receive("a")
assert(m.topic == "a" and m.payload == 2)
m = process.receive({ "c", "b" })
assert(m.topic == "b" and m.payload.x[3] == 3)

-- poll and timeouts
local none, err = process.receive(nil, 0)
assert(none == nil and err.kind == "timeout")
local t0 = time.monotonic()
none, err = process.receive("never", 0.02)
assert(none == nil and err.kind == "timeout")
assert(time.monotonic() - t0 >= 0.019)

-- recv: the same selective receive, answered as topic, payload, from
assert(process.send(me, "a", 1))
assert(process.send(me, "b", { x = { 1, 2, 3 } }))
assert(process.send(me, "a", 2))
local topic, value, from = process.recv("b")
assert(topic == "b" and value.x[3] == 3 and from == me, tostring(topic))
topic, value, from = process.recv({ "c", "a" })
assert(topic == "a" and value == 1 and from == me)
topic, value = process.recv()
assert(topic == "a" and value == 2)
topic, value, from = process.recv(nil, 0)
assert(topic == nil and value.kind == "timeout" and from == nil)
t0 = time.monotonic()
topic, value = process.recv("never", 0.02)
assert(topic == nil and value.kind == "timeout")
assert(time.monotonic() - t0 >= 0.019)
assert(process.send(me, "nil payload"))
topic, value, from = process.recv("nil payload")
assert(topic == "nil payload" and value == nil and from == me)
local ok_r, e_r = pcall(process.recv, 42)
assert(not ok_r and e_r:find("topic or list of topics"), e_r)

-- a payload is a deep copy: later changes do not reach the receiver
local shared = { n = 1 }
local payload = { a = shared, b = shared }
process.send(me, "copy", payload)
shared.n = 99
m = process.receive("copy")
assert(m.payload.a.n == 1, "copied at send time")
assert(m.payload.a == m.payload.b, "shared subtables stay shared")
local cyc = {}
cyc.self = cyc
process.send(me, "cycle", cyc)
m = process.receive("cycle")
assert(m.payload.self == m.payload, "cycles survive")

-- what cannot be sent
local ok, e = process.send(me, "bad", { f = print })
assert(ok == nil and e.kind == "invalid" and e.message:find("function"), tostring(e and e.message))
ok, e = pcall(process.send, 42, "x", 1)
assert(not ok and e:find("pid or registered name expected"), e)

-- sending to a pid that is not alive is not an error
assert(process.send("0.999999999", "ghost", 1))

-- spawn a child, talk to it, stop it
local child = assert(process.spawn("children/echo.lua", me, "hi"))
assert(child ~= me)
m = process.receive("hello", 5)
assert(m and m.payload == "hi" and m.from == child)
for i = 1, 100 do process.send(child, "ping", i) end
for i = 1, 100 do
  m = assert(process.receive("echo", 5))
  assert(m.payload == i, "per-sender order")
end
process.send(child, "stop")

-- a recv that waits is woken by a message, and sees its sender
local echo = assert(process.spawn("children/echo.lua", me, "recv"))
topic, value, from = process.recv("hello", 5)
assert(topic == "hello" and value == "recv" and from == echo)
process.send(echo, "ping", "x")
topic, value, from = process.recv("echo", 5)
assert(topic == "echo" and value == "x" and from == echo)
process.send(echo, "stop")

-- a receive with a timeout is woken by a message, not by the timer
local waker = assert(process.spawn("children/echo.lua", me, "again"))
t0 = time.monotonic()
m = process.receive("hello", 10)
assert(m and m.payload == "again" and time.monotonic() - t0 < 5)
process.send(waker, "stop")

-- spawn refuses scripts outside the root and reports missing ones
local p2, e2 = process.spawn("../../../etc/passwd")
assert(p2 == nil and e2.kind == "permission_denied", tostring(e2 and e2.message))
p2, e2 = process.spawn("children/missing.lua")
assert(p2, "a missing script still spawns and then fails with not_found")
return true
