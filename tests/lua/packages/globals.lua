-- Runs in the process's globals: sees and sets them like the main chunk.
seen_main = main_marker
set_by_package = true
return _ENV == _G
