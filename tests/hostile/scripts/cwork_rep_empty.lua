-- attack: string.rep of an empty string loops n times allocating nothing (36 s for 1e10)
-- expect: normal
return #(""):rep(1e10) + #(""):rep(1 << 60, "")
