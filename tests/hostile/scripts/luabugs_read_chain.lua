-- attack: Lua 5.4.4 bug 7923dbbf: an error naming the end of a 40,000-link chain of table reads (a.x.x...) takes seconds in C (getobjname is quadratic) and longer chains overflow the C stack
-- expect: normal
-- Upstream's reproducer (testes/errors.lua) only checks the message; the
-- harm is the recursion depth, so the chain here is long. load() refuses it.
local src = "local a = {} a.x = a return a" .. string.rep(".x", 40000) .. " + 1"
local f, err = load(src)
assert(f == nil and tostring(err):find("chain of table reads is too long"), tostring(err))
-- A chain of 100 links is fine and names the field in its error.
f = assert(load("local a = {} a.x = a return a" .. string.rep(".x", 99) .. " + 1"))
local ok, msg = pcall(f)
assert(not ok and msg:find("field 'x'"), msg)
-- upstream's own case (5.4.4 names it "global 'x'", 5.4.7 "field 'x'")
ok, msg = pcall(load("a = {_ENV = {}}; return a._ENV.x + 1"))
assert(not ok and msg:find("'x'"), msg)
return true
