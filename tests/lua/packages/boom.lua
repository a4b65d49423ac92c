-- Raises at its top level, on line 3.
local x = 1
error("boom at load " .. x)
