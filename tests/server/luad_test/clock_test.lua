-- Fixture of tests/server/test_runner_test.cpp: the virtual clock. Every test
-- here passes only when sleeps and timers run on virtual time, in order.
local test = require("test")
local time = require("time")
local process = require("process")
local T = {}

function T.test_timers_fire_in_deadline_order()
  time.after(3, "c")
  time.after(1, "a")
  time.after(2, "b")
  for i, topic in ipairs({"a", "b", "c"}) do
    test.equal(process.receive(nil, 10).topic, topic)
    test.equal(test.elapsed(), i)
  end
end

function T.test_an_hour_of_sleep()
  local wall, mono = time.now(), time.monotonic()
  time.sleep(3600)
  test.equal(test.elapsed(), 3600)
  test.equal(time.monotonic() - mono, 3600)
  test.near(time.now() - wall, 3600, 1e-3)
end

function T.test_clock_differences_are_exact()
  -- 50 hours from a steady clock reading crosses a power of two: a start with
  -- too many significant bits made t1 - t0 3600.0000000001 there.
  for _ = 1, 50 do
    local t0, w0 = time.monotonic(), time.now()
    time.sleep(3600)
    test.equal(time.monotonic() - t0, 3600)
    test.equal(time.now() - w0, 3600)
  end
  test.equal(test.show(3600.5), "3600.5")
  test.equal(test.show(3600.0), "3600.0")
end

function T.test_a_receive_ends_at_its_message_not_its_timeout()
  time.after(1, "x")
  test.equal(process.receive("x", 50).topic, "x")
  time.sleep(10)
  test.equal(test.elapsed(), 11)
end

function T.test_receive_timeouts_are_virtual()
  local msg, err = process.receive("never", 30)
  test.equal(msg, nil)
  test.equal(err.kind, "timeout")
  test.equal(test.elapsed(), 30)
end

function T.test_children_share_the_clock()
  process.spawn("sleeper.lua", process.self(), 5)
  test.equal(test.receive("slept", 10).payload, 5)
  test.equal(test.elapsed(), 5)
end

return T
