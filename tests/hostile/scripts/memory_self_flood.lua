-- attack: send itself 60 messages of 10 MiB without ever receiving (600 MB outside its heap)
-- expect: normal
local process = require('process')
local s = string.rep('x', 10 << 20)
local sent, refused = 0, 0
for _ = 1, 60 do
  local ok, err = process.send(process.self(), 'flood', s)
  if ok then
    sent = sent + 1
  else
    assert(err.kind == 'limit', tostring(err))
    refused = refused + 1
  end
end
assert(refused > 0, 'every 10 MiB send was queued')
return sent, refused
