-- A nested package, required by its dotted name.
return { area = function(r) return math.pi * r * r end }
