-- attack: spawn by names past NAME_MAX and PATH_MAX, to read the daemon's folders from the error (it said "internal: spawn failed: filesystem error: weakly_canonical: File name too long [<the script's folder>/yyy...]")
-- expect: normal
local process = require('process')
local names = { ('y'):rep(300) .. '.lua', ('a/'):rep(2100) .. 'x.lua', ('z'):rep(256) .. '/x.lua' }
for _, name in ipairs(names) do
  local pid, err = process.spawn(name)
  assert(not pid, 'spawned a name of ' .. #name .. ' bytes')
  assert(err.kind == 'invalid', err.kind .. ': ' .. err.message:sub(1, 300))
  assert(err.message:find('name too long for the file system', 1, true), err.message:sub(1, 300))
  -- The name is quoted from its start, cut to 200 bytes; nothing before it.
  assert(err.message:sub(1, 9) == "script '" .. name:sub(1, 1), err.message:sub(1, 300))
  assert(#err.message < 400, 'a message of ' .. #err.message .. ' bytes')
end
return #names
