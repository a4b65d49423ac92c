-- attack: send a supervisor every message kind it accepts with wrong shapes, types and values (restart 99, forged EXIT, huge and nested payloads, unknown topics)
-- expect: normal
-- The supervisor is the script's own (same owner, so no owner rule refuses
-- the sends): it must drop each message, stay alive and still answer.
local process = require("process")
local supervisor = require("supervisor")

local sup = assert(supervisor.start({ children = {} }))
local huge = string.rep("x", 1 << 20)
local nested = {}
local t = nested
for _ = 1, 150 do t.x = {}; t = t.x end
local payloads = { 99, -1, 0, 1, 2^63, 1/0, -1/0, "1", huge, nested, { 1, 2 }, true,
                   process.self(), { reason = "error" }, { reason = 5 } }
for _, topic in ipairs({ "restart", "EXIT", "which_children", "nonsense", "children" }) do
  for _, p in ipairs(payloads) do
    process.send(sup, topic, p)
  end
  process.send(sup, topic)  -- no payload at all
end
-- Still alive and answering, with no children started from nowhere.
process.send(sup, "which_children")
local r = assert(process.receive("children", 5), "the supervisor does not answer")
assert(type(r.payload) == "table" and #r.payload == 0, "children appeared from nowhere")
assert(process.info(sup), "the supervisor died")
process.send(sup, "stop")
return "survived"
