-- A folder package: require("shapes") loads this file; it requires a sibling.
local circle = require("shapes.circle")
return { circle = circle, name = "shapes" }
