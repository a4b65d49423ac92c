-- attack: returns a cyclic table as its result (the daemon copies results out of the process)
-- expect: error
-- A cycle cannot be a JSON reply: the copy must refuse it (an error exit that
-- says so), never recurse without bound or build an infinite tree.
local t = {}
t.me = t
t[1] = {t, {t}}
return t
