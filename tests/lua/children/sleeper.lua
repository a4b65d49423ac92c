-- Child: registers the name it is given (if any), then sleeps for an hour.
local process = require("process")
local parent, name = ...
if name then assert(process.register(name)) end
process.send(parent, "ready", name)
require("time").sleep(3600)
