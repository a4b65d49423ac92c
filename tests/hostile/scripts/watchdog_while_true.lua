-- attack: hold a worker with a bare `while true do end` (no call, no allocation)
-- expect: kill
while true do end
