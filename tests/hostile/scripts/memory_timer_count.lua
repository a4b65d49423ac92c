-- attack: arm 20,000 empty hour-long timers (no per-process count used to stop them)
-- expect: normal
local time = require('time')
local armed, refused = 0, 0
for _ = 1, 20000 do
  local timer, err = time.after(3600, 't')
  if timer then
    armed = armed + 1
  else
    assert(err.kind == 'limit', tostring(err))
    refused = refused + 1
  end
end
-- 10,000 is the per-process limit; the owner's quota (10,000 timers) is shared
-- with the other copy running beside it, so together they may arm fewer.
assert(armed <= 10000 and refused >= 10000, armed .. ' armed, ' .. refused .. ' refused')
return armed, refused
