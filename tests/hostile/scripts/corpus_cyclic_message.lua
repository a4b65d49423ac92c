-- attack: cyclic and shared tables sent as messages (to itself and to a child that sends them back)
-- expect: normal
-- The codec must keep cycles and sharing (encoded once), never recurse forever.
local process = require("process")
local me = process.self()
local t = {name = "loop"}
t.self = t
t.list = {t, t, {t}}
local shared = {}
for i = 1, 1000 do shared[i] = t end
assert(process.send(me, "cycle", {t = t, shared = shared}))
local msg = process.receive("cycle")
local got = msg.payload
assert(got.t.self == got.t, "the cycle was not kept")
assert(got.t.list[3][1] == got.t, "a nested back-reference was not kept")
assert(got.shared[1] == got.shared[1000] and got.shared[1] == got.t, "sharing was not kept")
-- A chain of 150 levels whose bottom points back to the top.
local top = {}
local at = top
for _ = 1, 150 do at.next = {} at = at.next end
at.next = top
assert(process.send(me, "chain", top))
local chain = process.receive("chain").payload
local walk = chain
for _ = 1, 151 do walk = walk.next end
assert(walk == chain, "the chain's back-reference was not kept")
return true
