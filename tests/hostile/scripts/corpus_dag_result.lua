-- attack: returns a DAG whose tree expansion is 2^40 nodes (each level refers twice to the next)
-- expect: any
-- The exit copy must not expand shared subtables into a tree: it is refused or
-- bounded in bytes, and the daemon's RSS stays under its bound.
local node = {"leaf"}
for _ = 1, 40 do node = {node, node} end
return node
