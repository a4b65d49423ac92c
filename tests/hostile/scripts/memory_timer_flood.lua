-- attack: arm 100 timers of 1 MiB each for an hour, then exit (their payloads used to outlive the process)
-- expect: normal
local time = require('time')
local s = string.rep('x', 1 << 20)
local armed, refused = 0, 0
for i = 1, 100 do
  local timer, err = time.after(3600, 'late', {i, s})
  if timer then
    armed = armed + 1
  else
    assert(err.kind == 'limit', tostring(err))
    refused = refused + 1
  end
end
assert(refused > 0, 'every 1 MiB timer was armed')
return armed, refused
