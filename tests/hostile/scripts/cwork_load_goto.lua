-- attack: load() of a chunk under 1 MiB whose parse is quadratic (backward gotos x labels)
-- expect: kill
-- Each `goto aN` scans the N labels before it: ~5e8 comparisons, about a second of parsing.
local t = {}
for i = 1, 32000 do t[i] = "::a" .. i .. ":: goto a" .. i end
local src = "local function f() " .. table.concat(t, " ") .. " end"
assert(#src < 1 << 20)
return load(src)
