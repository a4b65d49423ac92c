-- attack: fill the Lua heap to within 1 KiB of its limit, then raise an error whose traceback needs more (the daemon used to abort building it)
-- expect: limit
local process = require('process')
local limit = 64 * 1024 * 1024  -- the default profile's memory limit
local keep = {}

local function fill()
  -- Take a third of what is left until less than 1 KiB remains; each string
  -- is large (malloc'd), and string.rep needs twice its size for a moment.
  while true do
    collectgarbage('collect')
    local left = limit - process.info(process.self()).memory
    if left < 1024 then return end
    keep[#keep + 1] = string.rep('x', left // 3)
  end
end

-- A long name makes each traceback line long: the traceback outgrows Lua's
-- 1 KiB C buffer and asks the heap for 2 KiB that are not there.
local function recurse_with_a_long_name_so_that_each_traceback_line_is_long_enough(depth)
  if depth == 0 then
    fill()
    error('boom', 0)  -- level 0: raising allocates nothing
  end
  return (recurse_with_a_long_name_so_that_each_traceback_line_is_long_enough(depth - 1))
end
recurse_with_a_long_name_so_that_each_traceback_line_is_long_enough(40)
