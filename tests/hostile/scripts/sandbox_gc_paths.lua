-- attack: get a finaliser (__gc, which Lua runs with hooks off: a looping one can never be stopped) onto any object, by every path
-- expect: normal
-- With no argument a finaliser that runs loops for ever (the real attack: the
-- worker would be lost); the test suite passes "count" to only count them.
local count_only = ... == "count"
local finalised = 0
local function fin()
  finalised = finalised + 1
  if not count_only then while true do end end
end
local function refused(f, what)
  local ok, err = pcall(f)
  assert(not ok, what .. ": expected an error")
  return err
end
local keep = {}

-- 1. A metatable with a __gc field of any value is refused.
refused(function() setmetatable({}, {__gc = fin}) end, "plain __gc")
refused(function() setmetatable({}, {__gc = false}) end, "__gc = false")
refused(function() setmetatable({}, {__gc = 0}) end, "__gc = 0")

-- 2. The check reads raw: an __index on the metatable's metatable that adds
-- __gc when asked does not run, and a __gc added later never marks the object.
local sneaky = setmetatable({}, {__index = function(t, k)
  if k == "__gc" then rawset(t, "__gc", fin) end
end})
keep[#keep + 1] = setmetatable({}, sneaky)
local ok = pcall(setmetatable, {}, sneaky)  -- now raw: refused, or not marked
rawset(sneaky, "__gc", fin)
keep[#keep + 1] = setmetatable({}, {})
local late = {}
keep[#keep + 1] = setmetatable({}, late)
late.__gc = fin

-- 3. A metatable that gets a metatable of its own with __gc: refused too.
refused(function() setmetatable(late, {__gc = fin}) end, "__gc on a metatable's metatable")

-- 4. Shared metatables the C side reuses are out of reach.
local json = require("json")
local _, err = json.decode("x")
assert(type(err) == "table" and getmetatable(err) == false, "error metatable is hidden")
assert(getmetatable("") == false, "string metatable is hidden")
for _, lib in ipairs({string, table, math, utf8, coroutine, json}) do
  assert(getmetatable(lib) == false, "library metatable is hidden")
  local _, state = pairs(lib)
  assert(getmetatable(state) == false, "pairs hands out the proxy only")
  refused(function() setmetatable(lib, {}) end, "setmetatable on a library")
end
assert(getmetatable(json.decode('{"a":[1]}')) == nil, "decoded tables have no metatable")
local _, err2 = json.decode("y")
keep[#keep + 1] = err2  -- a later error table still gets no finaliser

-- 5. Userdata: no script-reachable way to make one with a settable metatable.
assert(newproxy == nil)

keep = nil
collectgarbage()
collectgarbage()
assert(finalised == 0, "a finaliser ran")
return finalised
