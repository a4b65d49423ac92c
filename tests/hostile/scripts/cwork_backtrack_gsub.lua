-- attack: a backtracking string.gsub holds a worker in C
-- expect: error
return (("a"):rep(500)):gsub(".-.-.-b", "x")
