-- attack: C-stack nesting through pcall calling pcall without bound, caught at every level
-- expect: normal
-- The innermost pcall gets the C-stack error and every level passes it up: the
-- worker's real stack never overflows and the script goes on.
local function p()
  local ok, err = pcall(p)
  if ok then return err end  -- the innermost error, passed up
  return err
end
local err = p()
assert(type(err) == "string" and err:find("overflow"), "no stack overflow error: " .. tostring(err))
return err
