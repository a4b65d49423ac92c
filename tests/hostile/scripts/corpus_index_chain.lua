-- attack: C-stack nesting through __index functions that index again, and a 100k-table __index chain
-- expect: error
-- The table chain is cut by Lua's loop limit ('__index' chain too long); the
-- function chain by the C-stack limit; the last one escapes as an error.
local chain = {}
for _ = 1, 100000 do chain = setmetatable({}, {__index = chain}) end
assert(not pcall(function() return chain.missing end), "a 100k __index chain was followed")
local t
t = setmetatable({}, {__index = function(self, k) return self[k .. "x"] end})
return t.a
