-- attack: table.concat of phantom elements that __index = rawlen turns into "0": a byte per step, in C, until the heap is full
-- expect: kill
local phantom = setmetatable({}, {__len = function() return 2^40 end, __index = rawlen})
return #table.concat(phantom)
