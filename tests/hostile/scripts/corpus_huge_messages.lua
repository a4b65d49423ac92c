-- attack: huge messages: queues messages of nearly message_bytes (16 MiB) to itself, far past its heap
-- expect: any
-- Queued messages are charged by bytes (to the receiver's memory or a
-- mailbox_bytes limit): sends must fail or the process end at a limit long
-- before 2 x 8 x 16 MiB sit in the daemon. One byte over message_bytes never sends.
local process = require("process")
local me = process.self()
local near = string.rep("m", 16 * 1024 * 1024 - 64)
local over = string.rep("m", 16 * 1024 * 1024 + 1)
local ok, err = process.send(me, "over", over)
assert(not ok and err, "a message over message_bytes was sent")
over = nil
for i = 1, 8 do
  local sent = process.send(me, "near", near)
  if not sent then return "refused at " .. i end
end
for _ = 1, 8 do
  local msg = process.receive("near")
  assert(#msg.payload == #near)
end
return "queued 8"
