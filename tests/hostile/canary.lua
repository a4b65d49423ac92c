-- The hostile corpus's canary: sleeps 10 ms in a loop and measures, for every
-- sleep, how late it woke: the time from one wake to the next minus 10 ms, so
-- the work between a wake and the next sleep counts too. A "stop" message ends
-- it; it returns {count, p50, p99, max, late = {wake, lateness, ...}} in
-- milliseconds (time.monotonic), `late` listing the sleeps more than 2 ms late.
local time = require("time")
local process = require("process")

local all, late = {}, {}
local prev = time.monotonic()
while true do
  time.sleep(0.01)
  local now = time.monotonic()
  local ms = (now - prev) * 1000 - 10
  prev = now
  all[#all + 1] = ms
  if ms > 2 then
    late[#late + 1] = now * 1000
    late[#late + 1] = ms
  end
  if process.receive("stop", 0) then break end
end
table.sort(all)
local function at(q) return all[math.max(1, math.ceil(#all * q))] or 0 end
return {count = #all, p50 = at(0.5), p99 = at(0.99), max = all[#all] or 0, late = late}
