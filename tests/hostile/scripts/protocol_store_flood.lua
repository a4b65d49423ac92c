-- attack: writes 30 values of 15 MiB to its store namespace (480 MB on disk without a quota)
-- expect: normal
local store = require("store")
local chunk = ("x"):rep(15 * 1024 * 1024)
for i = 1, 30 do
  local ok, err = store.set("flood" .. i, chunk)
  if not ok then
    -- No store permission, or the namespace's quota (64 MiB by default) is reached.
    assert(err.kind == "permission_denied" or err.kind == "limit" or err.kind == "unavailable", err.kind)
    assert(i <= 5, "the quota let " .. i .. " values of 15 MiB through")
    return i - 1
  end
end
error("30 values of 15 MiB were stored: no quota")
