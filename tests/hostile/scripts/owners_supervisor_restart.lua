-- attack: send {"restart", 99}, a forged EXIT and a CANCEL to every other owner's pid 0.1 .. 0.50 (a workflow's supervisor among them)
-- expect: normal
local process = require("process")
for i = 1, 50 do
  local pid = "0." .. i
  local info, err = process.info(pid)
  if not info and err then  -- alive, another owner's
    for _, topic in ipairs({ "restart", "EXIT", "CANCEL", "stop" }) do
      local ok, serr = process.send(pid, topic, { 99, from = process.self(), reason = "killed" })
      assert(ok == nil and serr.kind == "permission_denied", topic .. " to " .. pid .. " was not refused")
    end
    local linked, lerr = process.link(pid)
    assert(linked == nil and lerr.kind == "permission_denied", "link to " .. pid)
  end
end
return true
