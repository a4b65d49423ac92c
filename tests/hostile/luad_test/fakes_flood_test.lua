-- Attack on luad test: a test that declares fakes and makes requests without
-- end must not make the runner hold unbounded memory. Passes when the limits hold.
local test = require("test")
local http = require("http")
local T = {}
T.permissions = {"http:flood.example.com"}

function T.test_rules_are_bounded()
  local body = string.rep("b", 1 << 20)
  local ok, err
  for i = 1, 100 do
    ok, err = test.fake_http("GET", "https://flood.example.com/" .. i, 200, body)
    if not ok then break end
  end
  test.equal(err and err.kind, "limit")
  for i = 1, 20000 do
    ok, err = test.fake_http("GET", "https://flood.example.com/r" .. i)
    if not ok then break end
  end
  test.equal(err and err.kind, "limit")
end

function T.test_recorded_requests_are_bounded()
  test.http{url = "https://flood.example.com/*"}
  for _ = 1, 10050 do assert(http.get("https://flood.example.com/x")) end
  test.equal(#test.requests(), 10000)
end

function T.test_a_busy_child_only_delays_the_clock()
  -- A child that computes for a while: the clock waits until it sleeps.
  local process = require("process")
  process.spawn("busy.lua", process.self())
  test.equal(test.receive("done", 60).payload, "done")
  test.equal(test.elapsed(), 1)
end
return T
