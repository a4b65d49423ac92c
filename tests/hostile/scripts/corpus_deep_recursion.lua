-- attack: unbounded Lua recursion: local function f() return f() + 1 end
-- expect: limit
-- Its Lua stack and call frames fill the 64 MiB heap before the 1M-slot stack
-- limit: a memory limit, never a C stack overflow.
local function f() return f() + 1 end
return f()
