-- Child for store_test.cpp: reads one key with the namespace it inherited and
-- sends the value to its parent.
local process = require("process")
local parent, key = ...
process.send(parent, "value", require("store").get(key))
