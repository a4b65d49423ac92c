-- attack: kill every pid 0.1 .. 0.50 (workflows, supervisors, other users' processes) from a default-profile script
-- expect: normal
local process = require("process")
local me = tostring(process.self())
local refused = 0
for i = 1, 50 do
  local pid = "0." .. i
  local info, err = process.info(pid)
  if pid ~= me and not info then
    -- Not ours (refused) or not alive: a kill must not land.
    local ok, kerr = process.kill(pid, "hostile")
    assert(ok == false or (ok == nil and kerr.kind == "permission_denied"),
      "the kill of " .. pid .. " was not refused")
    if ok == nil then refused = refused + 1 end
    assert(err == nil or err.kind == "permission_denied")
  end
  -- (a process of our own owner, such as a canary submitted by the same user,
  -- is ours to kill: left alone)
end
return refused
