-- Parks in receive until told to stop.
require("process").receive("stop")
