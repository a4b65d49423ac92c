-- attack: spawn bomb: spawns linked children of itself in a loop, each waiting forever, never stopping
-- expect: kill
-- Every spawn must be cheap to refuse (a per-owner process quota), and
-- killing the parent must take the linked children with it.
local process = require("process")
if ... == "child" then
  process.receive("never")
  return
end
while true do
  process.spawn_link("corpus_spawn_bomb.lua", "child")
end
