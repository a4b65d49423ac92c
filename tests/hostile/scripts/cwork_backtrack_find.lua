-- attack: a backtracking string.find (n^4 steps, ~17 s on stock Lua 5.4.4) holds a worker
-- expect: error
-- The matcher's step budget ends it with a `limit` error ("pattern too complex").
return (("a"):rep(500)):find(".-.-.-b")
