-- attack: a spawn bomb: every process spawns linked copies of itself until spawn fails
-- expect: any
local process = require("process")
while true do
  local pid, err = process.spawn_link("owners_spawn_bomb.lua")
  if not pid then
    -- The owner's process quota (limit) stops it; every linked copy then
    -- dies with this error. (not_found: run from source, nothing to copy;
    -- unavailable: an owner-wide kill is under way.)
    assert(err.kind == "limit" or err.kind == "not_found" or err.kind == "unavailable", err.message)
    error(err)
  end
end
