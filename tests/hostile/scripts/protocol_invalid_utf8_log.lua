-- attack: logs lines that are not UTF-8 (and one cut at 16 KiB mid-character) for log subscribers and `luad logs`
-- expect: normal
local log = require("log")
log.info("raw \xff\xfe")
log.warn("fields", { k = "\xff", ["\xfe"] = 1 })
log.error("a" .. ("\xc3\xa9"):rep(10000))
return true
