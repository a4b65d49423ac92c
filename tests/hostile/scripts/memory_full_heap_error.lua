-- attack: fill the Lua heap to within 6 KiB of its limit, then raise an error whose traceback needs more (the daemon used to abort building it)
-- expect: limit
local process = require('process')
local limit = 64 * 1024 * 1024  -- the default profile's memory limit
local keep = {}
for i = 1, 64 do keep[i] = false end  -- sized now: no array growth near the end

local function fill()
  -- Take a third of what is left while that third is above 2 KiB: strings
  -- that large come from malloc and are counted to the byte (smaller blocks
  -- come from 4 KiB chunks). It stops with 4-6 KiB left. Each pass's info table reuses the last one's
  -- freed blocks.
  local n = 0
  while true do
    collectgarbage('collect')
    local left = limit - process.info(process.self()).memory
    if left // 3 <= 2048 then return end
    n = n + 1
    keep[n] = string.rep('x', left // 3)
  end
end

-- A long name makes each traceback line long: the traceback outgrows Lua's
-- 1 KiB C buffer: its 4 KiB buffer and the string made of it need more than is left.
local function recurse_with_a_long_name_so_that_each_traceback_line_is_long_enough(depth)
  if depth == 0 then
    fill()
    error('boom', 0)  -- level 0: raising allocates nothing
  end
  return (recurse_with_a_long_name_so_that_each_traceback_line_is_long_enough(depth - 1))
end
recurse_with_a_long_name_so_that_each_traceback_line_is_long_enough(40)
