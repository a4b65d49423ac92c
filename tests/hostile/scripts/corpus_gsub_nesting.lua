-- attack: C-stack nesting through string.gsub callbacks that call gsub again, without bound
-- expect: error
-- Each level nests a C call; Lua's C-stack limit (LUAI_MAXCCALLS) must end it
-- with "C stack overflow", never overflow the worker's real stack.
local function g(s) return (s:gsub(".", g)) end
return g("x")
