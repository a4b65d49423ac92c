-- attack: error() with a table error object nested 10k deep, with a __tostring returning a non-string
-- expect: error
-- The error copy must be bounded (no recursion over the object) and the exit
-- still an error.
local e = {}
for _ = 1, 10000 do e = {inner = e} end
error(setmetatable(e, {__tostring = function() return {} end}))
