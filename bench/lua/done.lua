-- Sends "done" to the pid it was given.
require("process").send(..., "done")
