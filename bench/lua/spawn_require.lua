-- spawn_require: a small job that requires a small file package (require_pkg.lua),
-- as a typical submitted script does. Spawned many times by bench_spawn_require.
local util = require("require_pkg")
return util.sum(util.range(1, 10))
