-- hello.lua: the quick-start example. Sleeps in a few coroutines at once,
-- logs, and returns a summary that `luad run` prints as JSON.
local time = require("time")
local log = require("log")
local json = require("json")

local who = ... or "world"
local started = time.monotonic()

-- Three generators that sleep between values: each sleep suspends the whole
-- process, and the scheduler resumes exactly the coroutine that slept.
local function ticker(name, n, delay)
  return coroutine.wrap(function()
    for i = 1, n do
      time.sleep(delay)
      coroutine.yield(name .. i)
    end
  end)
end

local seen = {}
for _, gen in ipairs({ ticker("a", 3, 0.01), ticker("b", 2, 0.02) }) do
  for tick in gen do seen[#seen + 1] = tick end
end

log.info("hello " .. who, { ticks = #seen })
return {
  greeting = "hello, " .. who,
  ticks = seen,
  elapsed_ms = math.floor((time.monotonic() - started) * 1000),
  encoded = json.encode({ b = 2, a = 1 }),
}
