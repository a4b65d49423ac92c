-- time.after delivers a message later; time.cancel stops it.
local time = require("time")
local process = require("process")
local me = process.self()
local t0 = time.monotonic()
local t = assert(time.after(0.02, "tick", { n = 1 }))
local m = assert(process.receive("tick", 5))
assert(m.payload.n == 1 and m.from == me)
assert(time.monotonic() - t0 >= 0.019, "not early")
assert(time.cancel(t) == false, "a fired timer cannot be canceled")

local c = assert(time.after(0.02, "never"))
assert(time.cancel(c) == true)
assert(time.cancel(c) == false)
assert(process.receive("never", 0.06) == nil, "a canceled timer sends nothing")

-- many timers arrive in deadline order
for i = 5, 1, -1 do time.after(0.005 * i, "order", i) end
for i = 1, 5 do assert(process.receive("order", 5).payload == i) end

local ok, err = time.after(0.01, "bad", print)
assert(ok == nil and err.kind == "invalid" and err.message:find("function"))
ok, err = pcall(time.after, -1, "x")
assert(not ok and err:find("non%-negative"))
return true
