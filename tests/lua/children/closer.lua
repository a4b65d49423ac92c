-- Holds a <close> variable on its main thread and ends as `how` says:
-- "return", "error" (raises), "exit" (process.exit) or "wait" (until killed).
-- Its __close tells the parent how it ended (tests/lua/close_at_exit.lua).
local process = require("process")
local parent, how = ...
local guard <close> = setmetatable({}, {
  __close = function(_, err)
    process.send(parent, "closed", { how = how, err = err and tostring(err) or false })
  end,
})
if how == "error" then
  error("boom")
elseif how == "exit" then
  process.exit("done")
elseif how == "wait" then
  process.send(parent, "waiting")
  process.receive("never")
end
return guard ~= nil
