-- Attack on luad test: a test that fills its heap ends at its memory limit.
local T = {}
function T.test_fills_the_heap()
  local t = {}
  for i = 1, math.huge do t[i] = string.rep("x", 1024) .. i end
end
return T
