-- attack: error() with a table error object whose __tostring loops forever
-- expect: any
-- The runtime reads the error object after the process's code has ended: it
-- must not run the loop outside every limit (raw access, or under the CPU
-- limit); the process ends or is killed, and no worker is held.
error(setmetatable({}, {__tostring = function() while true do end end}))
