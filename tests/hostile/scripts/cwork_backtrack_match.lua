-- attack: a backtracking string.match holds a worker in C
-- expect: error
return (("a"):rep(500)):match("(.-)(.-)(.-)b")
