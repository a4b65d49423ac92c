-- Half of a require cycle: cycle_a -> cycle_b -> cycle_a.
local b = require("cycle_b")
return { b = b }
