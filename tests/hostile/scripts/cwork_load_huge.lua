-- attack: load() of a source larger than [limits] source (1 MiB by default)
-- expect: normal
local f, err = load(("x = 1 "):rep(400000))
assert(f == nil and err:find("more than the limit", 1, true), err)
return err
