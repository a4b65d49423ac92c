-- attack: return one 1 MiB string referenced 250 times (a 250 MiB tree if the exit were copied naively)
-- expect: limit
local s = string.rep('x', 1 << 20)
local t = {}
for i = 1, 250 do t[i] = s end
return t
