-- A small package for the spawn_require benchmark: a few helpers, `return M`.
local M = {}

function M.range(from, to)
  local out = {}
  for i = from, to do out[#out + 1] = i end
  return out
end

function M.sum(list)
  local total = 0
  for _, v in ipairs(list) do total = total + v end
  return total
end

function M.map(list, f)
  local out = {}
  for i, v in ipairs(list) do out[i] = f(v) end
  return out
end

function M.join(list, sep)
  return table.concat(M.map(list, tostring), sep or ",")
end

return M
