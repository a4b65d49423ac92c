-- attack: table.insert shifting "elements" up to a huge __len, in C, allocating nothing
-- expect: kill
table.insert(setmetatable({}, {__len = function() return math.maxinteger - 1 end}), 1, "x")
