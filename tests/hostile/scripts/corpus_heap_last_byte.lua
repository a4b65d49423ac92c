-- attack: builds strings to the last byte of its 64 MiB heap (halving the chunk on each refusal), then allocates once more
-- expect: limit
-- Every refusal is a normal memory error; the last one escapes the main chunk
-- and must end only this process, with reason limit.
local kept = {}
local size = 8 * 1024 * 1024
while size >= 1 do
  local ok = pcall(function() kept[#kept + 1] = string.rep("h", size) end)
  if not ok then size = size // 2 end
end
local more = {}
for i = 1, 1e9 do more[i] = tostring(i) .. "x" end
return #kept
