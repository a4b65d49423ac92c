-- Fixture of tests/server/test_runner_test.cpp: faked HTTP and the throwaway
-- store. Every test here passes.
local test = require("test")
local http = require("http")
local store = require("store")
local T = {}
T.permissions = {"http:api.example.com", "store:fixture"}

function T.test_rules_answer_in_order_and_requests_are_recorded()
  test.http{method = "POST", url = "https://api.example.com/items", status = 201, body = "made",
            headers = {Location = "/items/1"}, times = 1}
  test.http{url = "https://api.example.com/*", status = 409}
  local r = assert(http.post("https://api.example.com/items", "one", {headers = {["x-n"] = "1"}}))
  test.equal({r.status, r.body, r.headers.location}, {201, "made", "/items/1"})
  test.equal(assert(http.post("https://api.example.com/items", "two")).status, 409)
  local seen = test.requests()
  test.equal(#seen, 2)
  test.equal({seen[1].method, seen[1].url, seen[1].body, seen[1].headers["x-n"]},
             {"POST", "https://api.example.com/items", "one", "1"})
end

function T.test_an_unmatched_request_fails_clearly()
  local r, err = http.get("https://api.example.com/nothing")
  test.equal(r, nil)
  test.equal(err.kind, "unavailable")
  test.truthy(err.message:find("no fake answers GET https://api.example.com/nothing", 1, true))
end

function T.test_permissions_are_checked_as_live()
  test.http{url = "https://other.example.com/*"}
  local r, err = http.get("https://other.example.com/x")
  test.equal(r, nil)
  test.equal(err.kind, "permission_denied")
end

function T.test_faked_errors()
  test.http{url = "https://api.example.com/slow", error = {kind = "timeout", message = "too slow"}}
  local _, err = http.get("https://api.example.com/slow")
  test.equal({err.kind, err.message}, {"timeout", "too slow"})
end

function T.test_the_store_starts_empty_a()
  test.equal(store.get("k"), nil)
  assert(store.set("k", "a"))
end

function T.test_the_store_starts_empty_b()
  test.equal(store.get("k"), nil)
  assert(store.set("k", "b"))
end

return T
