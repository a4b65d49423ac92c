-- attack: short strings built to collide in the receiver's string cache, each sent to itself twice
-- expect: normal
-- Attacks the receiver's string cache (runtime/string_cache.cpp) from inside
-- one process: strings built to share one set and one doorkeeper tag (same
-- first four bytes, last four bytes and length; only the middle differs),
-- each sent twice in a row so that every one is taken in. Every received
-- topic, key and value must be the string sent, and what the heap holds after
-- 20,000 of them must not grow with their number (the cache holds 16).
-- Returns the strings checked and the heap's growth in bytes.
local process = require("process")
local me = process.self()

local function heap()
  collectgarbage("collect")
  return collectgarbage("count") * 1024
end

local function check(want, got, what)
  if got ~= want then error(what .. ": sent " .. want .. ", received " .. tostring(got)) end
end

local checked = 0
local function round(n, len)
  for i = 1, n do
    local mid = string.format("%0" .. (len - 8) .. "d", i)
    local s = "head" .. mid .. "tail"
    for _ = 1, 2 do
      process.send(me, s, {[s] = s, n = i})
      local topic, payload = process.recv(s, 0)
      check(s, topic, "topic")
      check(s, payload[s], "value")
      check(i, payload.n, "n")
      checked = checked + 1
    end
  end
end

round(500, 12)  -- warm: the mailbox, the cache, the registry's array
local before = heap()
for _, len in ipairs({9, 12, 16, 17, 40}) do round(4000, len) end
return checked, math.floor(heap() - before)
