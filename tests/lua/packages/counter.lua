-- A `return M` package with private state; counts its loads in a global.
local M = {}
local count = 0 -- private: reachable only through M's functions
loads = (loads or 0) + 1

function M.bump()
  count = count + 1
  return count
end

function M.value() return count end

return M
