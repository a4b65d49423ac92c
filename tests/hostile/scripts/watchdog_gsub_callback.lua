-- attack: loop inside a gsub replacement function (Lua called from the C matcher, cannot yield)
-- expect: kill
local s = ("x"):gsub("x", function()
  while true do end
end)
return s
