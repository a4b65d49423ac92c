-- attack: spawn 10,000 scripts by names that do not exist, each one different (the code cache remembered every name it resolved, for good)
-- expect: normal
local process = require('process')
local tried = 0
for i = 1, 10000 do
  -- A missing script is found missing when the child starts: it dies at once.
  local pid, err = process.spawn('no_such_script_' .. i .. '.lua')
  assert(pid or err.kind == 'not_found', err and err.message)
  tried = tried + 1
end
return tried
