-- Tests of quotes.lua, run with `luad test examples/testing` (docs/testing.md).
-- Each test function runs as its own process with fakes: the HTTP answers
-- declared with test.http, a virtual clock and an empty store of its own.
local test = require("test")
local process = require("process")
local time = require("time")

local T = {}

-- What the service needs, as its workflow's config would grant it.
T.permissions = {"http:quotes.example.com", "store:quotes"}

-- Asks the service for a quote; waits up to a virtual minute for the answer.
local function ask(service, symbol)
  process.send(service, "get", {symbol = symbol})
  return test.receive("quote", 60).payload
end

function T.test_fetches_a_price()
  test.http{method = "GET", url = "https://quotes.example.com/v1/quotes/ACME", json = {price = 12.5}}
  local service = process.spawn("quotes.lua")
  test.equal(ask(service, "ACME"), {symbol = "ACME", price = 12.5})
  local seen = test.requests()
  test.equal(#seen, 1)
  test.equal(seen[1].method, "GET")
end

function T.test_keeps_prices_in_the_store()
  test.http{url = "https://quotes.example.com/v1/quotes/*", json = {price = 3}, times = 1}
  local service = process.spawn("quotes.lua")
  test.equal(ask(service, "ACME").price, 3)
  test.equal(ask(service, "ACME").price, 3) -- no second request: the fake answers once
  test.equal(#test.requests(), 1)
end

function T.test_retries_a_503_with_backoff()
  test.http{url = "https://quotes.example.com/v1/quotes/ACME", status = 503, times = 2}
  test.http{url = "https://quotes.example.com/v1/quotes/ACME", json = {price = 7}}
  local service = process.spawn("quotes.lua")
  local started = time.now()
  test.equal(ask(service, "ACME").price, 7)
  -- Slept 1 s, then 2 s, on the virtual clock: the test took milliseconds.
  test.near(time.now() - started, 3, 1e-6)
  test.equal(#test.requests(), 3)
end

function T.test_gives_up_after_four_tries()
  test.http{url = "https://quotes.example.com/*", error = "timeout"}
  local service = process.spawn("quotes.lua")
  test.equal(ask(service, "ACME"), {symbol = "ACME", error = "the quotes API is unavailable"})
  test.equal(test.elapsed(), 1 + 2 + 4)
end

function T.test_refuses_a_bad_symbol()
  local service = process.spawn("quotes.lua")
  test.equal(ask(service, "acme!").error, "a symbol of capital letters expected")
  test.equal(#test.requests(), 0)
end

function T.test_stops_when_asked()
  local service = process.spawn_monitor("quotes.lua")
  process.send(service, "stop")
  local down = test.receive("DOWN")
  test.equal(down.payload.reason, "normal")
end

function T.test_an_hour_of_sleep_takes_no_time()
  local t0 = time.monotonic()
  time.sleep(3600)
  test.equal(time.monotonic() - t0, 3600)
  test.errors(function() error("boom") end, "boom")
end

return T
