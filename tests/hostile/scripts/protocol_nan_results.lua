-- attack: returns NaN and ±infinity, bare and nested in tables, so the exit reply would not be JSON
-- expect: normal
local nan, inf = 0 / 0, 1 / 0
return nan, inf, -inf, { nan, { inf = inf, list = { -inf, nan } } }
