-- actors.lua: a supervised pool of workers squaring numbers.
--   luad run examples/actors.lua 10
-- The supervisor restarts a worker that crashes (worker.lua crashes on 13);
-- jobs still queued in the crashed worker's mailbox are lost, as in Erlang, and
-- the result lists them under "missing".
local process = require("process")
local supervisor = require("supervisor")
local n = tonumber(...) or 20

process.register("collector")
local sup = assert(supervisor.start({
  strategy = "one_for_one", intensity = 5, period = 10,
  children = {
    { name = "w1", script = "worker.lua", args = { "w1" } },
    { name = "w2", script = "worker.lua", args = { "w2" } },
  },
}))

local results, sent = {}, 0
for i = 1, n do
  local w = process.whereis(i % 2 == 0 and "w1" or "w2")
  while not w do  -- a worker may be restarting
    require("time").sleep(0.01)
    w = process.whereis(i % 2 == 0 and "w1" or "w2")
  end
  process.send(w, "square", i)
  sent = sent + 1
end
local answered = 0
while answered < sent do
  local m = process.receive("squared", 2)
  if not m then break end  -- the job given to a crashed worker is lost: report it
  results[m.payload.n] = m.payload.square
  answered = answered + 1
end
process.send(sup, "stop")
local missing = {}
for i = 1, n do if not results[i] then missing[#missing + 1] = i end end
return { answered = answered, missing = missing, sum_of_squares = (function()
  local s = 0
  for _, v in pairs(results) do s = s + v end
  return s
end)() }
