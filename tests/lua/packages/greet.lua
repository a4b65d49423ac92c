-- A package whose value is a function.
local greeting = "hello"
return function(name) return greeting .. ", " .. name end
