-- attack: a timer flood: time.after with a long delay until it is refused
-- expect: error
local time = require("time")
local timers = {}
for i = 1, 1e7 do
  local t, err = time.after(3600, "flood", i)
  if not t then
    assert(err.kind == "limit", err.message)
    error(err)
  end
  timers[i] = t
end
error("a million timers were accepted")
