-- The sandbox: what a script can and cannot reach.
for _, name in ipairs({ "io", "os", "debug", "package", "dofile", "loadfile", "loadstring",
                        "module", "setfenv", "getfenv", "newproxy", "collectgarbage_stop" }) do
  assert(_G[name] == nil, name .. " must not be reachable")
end
assert(string.dump == nil, "string.dump must be gone")
assert(("x").dump == nil, "string.dump must be gone from the string metatable too")

-- safe base functions are there
for _, name in ipairs({ "assert", "error", "getmetatable", "ipairs", "next", "pairs", "pcall",
                        "print", "rawequal", "rawget", "rawlen", "rawset", "select",
                        "setmetatable", "tonumber", "tostring", "type", "xpcall", "load",
                        "require", "collectgarbage" }) do
  assert(type(_G[name]) == "function", name .. " must be a function")
end
assert(_VERSION == "Lua 5.4")
assert(_G._G == _G)
for _, lib in ipairs({ "string", "table", "math", "utf8", "coroutine" }) do
  assert(type(_G[lib]) == "table", lib .. " must be a table")
end

-- libraries work
assert(("abc"):upper() == "ABC")
assert(("%d-%s"):format(4, "x") == "4-x")
assert("10" + 1 == 11, "string arithmetic coercion")
assert(table.concat({ 1, 2, 3 }, ",") == "1,2,3")
assert(math.floor(2.5) == 2 and math.maxinteger > 0)
assert(utf8.char(228) == "ä" and utf8.len("ä") == 1)
local t = { 3, 1, 2 }
table.sort(t)
assert(t[1] == 1 and t[3] == 3)

-- library tables and the string metatable are read-only
local function refuses(f, pattern)
  local ok, err = pcall(f)
  assert(not ok, "expected an error")
  assert(tostring(err):find(pattern), "unexpected error: " .. tostring(err))
end
refuses(function() string.upper = nil end, "read%-only table 'string'")
refuses(function() table.x = 1 end, "read%-only table 'table'")
refuses(function() math.pi = 3 end, "read%-only")
refuses(function() rawset(string, "upper", print) end, "read%-only")
refuses(function() setmetatable(string, {}) end, "protected metatable")
assert(getmetatable("") == false, "string metatable must be hidden")
assert(getmetatable(string) == false, "library metatable must be hidden")
local n = 0
for k, v in pairs(string) do n = n + 1 end
assert(n > 10, "pairs over a library table lists its functions")
assert(#string == 0)

-- load: text chunks only, with an optional environment
local f = assert(load("return 1 + 1"))
assert(f() == 2)
local env = { x = 5 }
assert(load("return x", "chunk", "t", env)() == 5)
assert(load("return x", "chunk", "t", {})() == nil)
local bin = "\27Lua\84\0"
local ok, err = load(bin)
assert(ok == nil and err:find("binary"), "binary chunks must be refused")
ok, err = load(bin, "b", "b")
assert(ok == nil, "binary chunks must be refused even with mode b")
local pieces = { "return ", "40 ", "+ 2" }
local i = 0
assert(load(function() i = i + 1 return pieces[i] end)() == 42)
ok, err = load("return +")
assert(ok == nil and err:find("unexpected symbol"))

-- collectgarbage: only harmless options
assert(type(collectgarbage("count")) == "number")
collectgarbage()
refuses(function() collectgarbage("stop") end, "not allowed")

-- globals are the script's own: deleting one keeps it deleted
print = nil
assert(print == nil)
local g = 1
_G.my_global = 7
assert(my_global == 7)
return true
