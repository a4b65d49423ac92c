-- Attack on luad test (tests/hostile/luad_test_test.cpp): a test that never
-- yields must end at the runner's --timeout, and the next test still runs.
local T = {}
function T.test_spins_forever()
  while true do end
end
function T.test_after_the_spinner()
  return true
end
return T
