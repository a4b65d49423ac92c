-- Waits forever at its top level (for kill tests).
require("process").receive("never")
