-- attack: spawn 3,000 missing scripts by names near PATH_MAX (~3.8 KB each), each one different (4,096 remembered names would hold 30 MB)
-- expect: normal
local process = require('process')
local base = ('x/'):rep(1900)
local tried = 0
for i = 1, 3000 do
  local pid, err = process.spawn(base .. i .. '.lua')
  assert(pid or err.kind == 'not_found', err and err.message)
  tried = tried + 1
end
return tried
