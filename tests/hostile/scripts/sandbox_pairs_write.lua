-- attack: reach the real (writable) table behind a read-only library proxy through pairs, next, ipairs, rawget, rawset, getmetatable or __pairs, and write it
-- expect: normal
local function refused(f, what)
  local ok = pcall(f)
  assert(not ok, what .. ": expected an error")
end
local json = require("json")
local libs = {string = string, table = table, math = math, utf8 = utf8,
              coroutine = coroutine, json = json}
for name, lib in pairs(libs) do
  local iter, state, first = pairs(lib)
  assert(state == lib, name .. ": pairs must hand out the proxy, not the real table")
  assert(first == nil)
  refused(function() rawset(state, "x", 1) end, name .. " rawset")
  refused(function() state.x = 1 end, name .. " assignment")
  local n = 0
  for k, v in pairs(lib) do
    n = n + 1
    assert(type(v) ~= "table" or v == lib or getmetatable(v) == false, name .. "." .. tostring(k))
  end
  assert(n > 0, name .. ": pairs lists the functions")
  assert(next(lib) == nil, name .. ": the proxy itself is empty")
  assert(rawget(lib, "x") == nil)
  assert(getmetatable(lib) == false)
  -- the iterator refuses anything but a proxy
  refused(function() iter({}, nil) end, name .. " iterator on a plain table")
  for _, v in ipairs(lib) do assert(v ~= nil) end
end
-- the string library behind string methods stays intact
assert(("abc"):upper() == "ABC" and string.upper == ("x").upper)
assert(string.x == nil and json.x == nil)
return true
