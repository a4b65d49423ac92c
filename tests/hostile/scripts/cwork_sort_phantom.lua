-- attack: table.sort of 2^31 phantom elements (a lying __len, C-function __index and __newindex): minutes of C, no allocation
-- expect: kill
local phantom = setmetatable({}, {__len = function() return 2^31 - 2 end, __index = tostring, __newindex = type})
table.sort(phantom)
