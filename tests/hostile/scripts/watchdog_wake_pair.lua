-- attack: two copies wake each other forever, each turn a send and a receive, so the woken one always waits in the worker's run-next slot; a slot that ran ahead of the queue would hold the worker for the pair alone
-- expect: kill
local process = require("process")
local me, peer = "wake_pair_a", "wake_pair_b"
if not process.register(me) then
  me, peer = peer, me
  assert(process.register(me))
  process.send(peer, "go")
end
while true do
  process.recv()
  process.send(peer, "x")
end
