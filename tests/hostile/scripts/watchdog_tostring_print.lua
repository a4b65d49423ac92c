-- attack: loop in a __tostring metamethod reached through print (Lua called from C, cannot yield)
-- expect: kill
print(setmetatable({}, {__tostring = function()
  while true do end
end}))
