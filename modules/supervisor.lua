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
-- Anyone allowed to send may reach it, so every message is checked before it
-- is used: EXIT only from a child that really ended (or the parent), "restart"
-- only from its own timers, payloads by type. Anything else is dropped and
-- logged (rate-limited); a message never crashes it.
local process = require("process")
local time = require("time")
local log = require("log")
local supervisor = require("supervisor")

local spec, parent, base = ...

-- The spec comes from a script when supervisor.start is called from Lua: a bad
-- one ends the supervisor at once with a message naming the field.
local function check_spec()
  assert(type(spec) == "table", "supervisor spec: expected a table")
  local function opt(v, t, what)
    assert(v == nil or type(v) == t, "supervisor spec: " .. what .. " must be a " .. t)
  end
  opt(spec.strategy, "string", "strategy")
  opt(spec.intensity, "number", "intensity")
  opt(spec.period, "number", "period")
  opt(spec.backoff, "table", "backoff")
  opt(spec.children, "table", "children")
  if spec.backoff then
    opt(spec.backoff.initial, "number", "backoff.initial")
    opt(spec.backoff.max, "number", "backoff.max")
  end
  for i, c in ipairs(spec.children or {}) do
    local at = "children[" .. i .. "]"
    assert(type(c) == "table", "supervisor spec: " .. at .. " must be a table")
    assert(type(c.script) == "string", "supervisor spec: " .. at .. ".script must be a string")
    opt(c.args, "table", at .. ".args")
    opt(c.restart, "string", at .. ".restart")
  end
end
check_spec()

spec.base = type(base) == "string" and base or "."
parent = parent and tostring(parent)  -- its text form: compared with tostring(m.from)
local strategy = spec.strategy or "one_for_one"
local intensity = spec.intensity or 3
local period = spec.period or 5
local backoff = spec.backoff or {}
local initial_delay = backoff.initial or 0.05
local max_delay = backoff.max or 5
assert(strategy == "one_for_one" or strategy == "one_for_all", "unknown strategy " .. tostring(strategy))

local self = process.self()
process.trap_exits(true)
local children = {}   -- i -> {spec, pid, restarts, streak}
local by_pid = {}     -- pid -> i
local recent = {}     -- times of recent restarts
local restarts = 0    -- of every child, for `luad workflows`
local last_exit       -- {name, reason, kind, message} of the last child that ended

-- Dropped messages are logged at most `burst` at once, refilled at `rate` a
-- second; the next line logged says how many were left out meanwhile.
local drops = { tokens = 5, burst = 5, rate = 0.5, at = time.monotonic(), suppressed = 0 }

local function printable(s)
  return (tostring(s):sub(1, 48):gsub("[^%w_%.%-:]", "?"))
end

local function drop(m, why)
  local now = time.monotonic()
  drops.tokens = math.min(drops.burst, drops.tokens + (now - drops.at) * drops.rate)
  drops.at = now
  if drops.tokens < 1 then
    drops.suppressed = drops.suppressed + 1
    return
  end
  drops.tokens = drops.tokens - 1
  log.warn("supervisor: dropped a message", {
    topic = printable(m.topic), from = tostring(m.from), why = why,
    suppressed = drops.suppressed,
  })
  drops.suppressed = 0
end

local function child_name(c)
  return type(c.spec.name) == "string" and c.spec.name or tostring(c.spec.name)
end

-- Tells the daemon (luad workflows) how often it restarted and how the last
-- child ended; a no-op for a supervisor the daemon did not start.
local function report()
  local e = last_exit or {}
  supervisor.report(restarts, e.name, e.reason, e.kind, e.message)
end

local function start(i)
  local c = children[i]
  local script = c.spec.script
  if script:sub(1, 1) ~= "/" then script = spec.base .. "/" .. script end
  local pid, err = process.spawn_link(script, table.unpack(c.spec.args or {}))
  if not pid then
    log.error("supervisor: cannot start child",
      { name = child_name(c), error = err.message, kind = err.kind })
    last_exit = { name = child_name(c), reason = "not started", kind = err.kind,
                  message = err.message }
    report()
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
  local e = last_exit
  local last = e and ("; last exit of %s: %s%s"):format(e.name, e.reason,
    e.message and (" (" .. e.message .. ")") or "") or ""
  log.error("supervisor gave up", {
    why = why, child = e and e.name, reason = e and e.reason, kind = e and e.kind,
    message = e and e.message, restarts = restarts,
  })
  report()
  process.exit("supervisor gave up: " .. why .. last)
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
  restarts = restarts + 1
  local delay = math.min(max_delay, initial_delay * 2 ^ (c.streak - 1))
  time.after(delay, "restart", i)
end

for i, child in ipairs(spec.children or {}) do
  children[i] = { spec = child, restarts = 0, streak = 0 }
  if not start(i) then give_up("child " .. tostring(child.name) .. " did not start") end
end

-- A child's EXIT: the link is gone once a process has really ended, so a
-- child that sends "EXIT" itself (the link still holds) is not believed.
local function on_child_exit(m, i)
  if process.link(m.from) then return drop(m, "EXIT from a child that is still alive") end
  local c = children[i]
  by_pid[m.from] = nil
  c.pid = nil
  local p = m.payload
  local reason = p.reason
  last_exit = { name = child_name(c), reason = reason,
                kind = type(p.kind) == "string" and p.kind or nil,
                message = type(p.message) == "string" and p.message or nil }
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
  report()
end

local function on_restart(m)
  local i = m.payload
  if m.from ~= self then return drop(m, "restart is sent only by the supervisor's own timers") end
  if math.type(i) ~= "integer" or not children[i] then
    return drop(m, "restart payload is not a child index")
  end
  local c = children[i]
  if not c.pid and not start(i) then
    note_restart()
    schedule(i)
    report()
  end
end

while true do
  local m = process.receive()
  local topic = m.topic
  if topic == "EXIT" then
    local i = by_pid[m.from]
    if type(m.payload) ~= "table" or type(m.payload.reason) ~= "string" then
      drop(m, "EXIT payload is not {reason = string, ...}")
    elseif i then
      on_child_exit(m, i)
    elseif parent and tostring(m.from) == parent then
      if process.link(m.from) then
        drop(m, "EXIT from a parent that is still alive")
      else
        stop_all()
        return "parent ended"
      end
    end
    -- else: a process that linked itself to us ended; nothing to do
  elseif topic == "restart" then
    on_restart(m)
  elseif topic == "which_children" then
    local list = {}
    for _, c in ipairs(children) do
      list[#list + 1] = { name = c.spec.name, pid = c.pid, restarts = c.restarts }
    end
    -- (pcall: a message from outside any process, the socket's `send`, has
    -- no pid to answer; send raises on that)
    pcall(process.send, m.from, "children", list)
  elseif topic == "stop" or topic == "CANCEL" then
    stop_all()
    return "stopped"
  else
    drop(m, "unknown topic")
  end
end
