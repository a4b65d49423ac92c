-- attack: a backtracking string.gmatch step holds a worker in C
-- expect: error
for m in (("a"):rep(500)):gmatch(".-.-.-b") do return m end
