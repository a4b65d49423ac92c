-- The supervisor process (embedded into luad by modules/supervisor.cpp). Started
-- by supervisor.start(spec) with the spec as its argument; it traps exits,
-- starts the children linked to it, and restarts them by policy:
--   spec.strategy   "one_for_one" (restart the child that ended) or
--                   "one_for_all" (restart all of them)
--   spec.intensity  restarts allowed within spec.period seconds before the
--                   supervisor gives up, ends its children and exits with an error
--   spec.backoff    {initial = s, max = s}: delay before a restart, doubling for
--                   each restart of the same child in a row
--   children[i]     {name, script, args, restart = "permanent"|"transient"|"temporary"}
-- Messages it answers: "which_children" (replies "children" with a list of
-- {name, pid, restarts}), "stop" and CANCEL (end the children, exit normally).
local process = require("process")
local time = require("time")
local log = require("log")

local spec, parent, base = ...
spec.base = base or "."
parent = parent and tostring(parent)  -- its text form: compared with tostring(m.from)
local strategy = spec.strategy or "one_for_one"
local intensity = spec.intensity or 3
local period = spec.period or 5
local backoff = spec.backoff or {}
local initial_delay = backoff.initial or 0.05
local max_delay = backoff.max or 5
assert(strategy == "one_for_one" or strategy == "one_for_all", "unknown strategy " .. tostring(strategy))

process.trap_exits(true)
local children = {}   -- i -> {spec, pid, restarts, streak}
local by_pid = {}     -- pid -> i
local recent = {}     -- times of recent restarts

local function start(i)
  local c = children[i]
  local script = c.spec.script
  if script:sub(1, 1) ~= "/" then script = spec.base .. "/" .. script end
  local pid, err = process.spawn_link(script, table.unpack(c.spec.args or {}))
  if not pid then
    log.error("supervisor: cannot start child",
      { name = c.spec.name, error = err.message, kind = err.kind })
    return false
  end
  c.pid = pid
  c.started = time.monotonic()
  by_pid[pid] = i
  return true
end

local function stop_all()
  for _, c in ipairs(children) do
    if c.pid then
      by_pid[c.pid] = nil
      process.unlink(c.pid)
      process.kill(c.pid, "supervisor stopping")
      c.pid = nil
    end
  end
end

local function give_up(why)
  stop_all()
  process.exit("supervisor gave up: " .. why)
end

-- Counts a restart against the intensity; gives up when it is exceeded.
local function note_restart()
  local now = time.monotonic()
  local kept = {}
  for _, t in ipairs(recent) do
    if now - t < period then kept[#kept + 1] = t end
  end
  kept[#kept + 1] = now
  recent = kept
  if #recent > intensity then
    give_up(("%d restarts within %g s"):format(#recent, period))
  end
end

local function should_restart(c, reason)
  local policy = c.spec.restart or "permanent"
  if policy == "permanent" then return true end
  if policy == "transient" then return reason ~= "normal" end
  return false
end

local function schedule(i)
  local c = children[i]
  c.restarts = c.restarts + 1
  c.streak = c.streak + 1
  local delay = math.min(max_delay, initial_delay * 2 ^ (c.streak - 1))
  time.after(delay, "restart", i)
end

for i, child in ipairs(spec.children or {}) do
  children[i] = { spec = child, restarts = 0, streak = 0 }
  if not start(i) then give_up("child " .. tostring(child.name) .. " did not start") end
end

while true do
  local m = process.receive({ "EXIT", "restart", "which_children", "stop", "CANCEL" })
  if m.topic == "EXIT" then
    local i = by_pid[m.from]
    if i then
      local c = children[i]
      by_pid[m.from] = nil
      c.pid = nil
      local reason = m.payload.reason
      if time.monotonic() - (c.started or 0) > period then c.streak = 0 end  -- it had settled
      if should_restart(c, reason) then
        note_restart()
        if strategy == "one_for_all" then
          stop_all()
          for j in ipairs(children) do schedule(j) end
        else
          schedule(i)
        end
      end
    elseif tostring(m.from) == parent then
      stop_all()
      return "parent ended"
    end
  elseif m.topic == "restart" then
    local c = children[m.payload]
    if not c.pid then
      if not start(m.payload) then
        note_restart()
        schedule(m.payload)
      end
    end
  elseif m.topic == "which_children" then
    local list = {}
    for _, c in ipairs(children) do
      list[#list + 1] = { name = c.spec.name, pid = c.pid, restarts = c.restarts }
    end
    process.send(m.from, "children", list)
  else  -- stop, CANCEL
    stop_all()
    return "stopped"
  end
end
