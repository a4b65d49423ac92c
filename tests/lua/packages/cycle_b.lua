-- The other half of the cycle.
local a = require("cycle_a")
return { a = a }
