-- Fixture of tests/server/test_runner_test.cpp: does not compile.
local T = {
return T
