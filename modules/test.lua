-- The Lua part of the `test` module (modules/test.cpp runs it at each require
-- with the module's table): assertions with useful messages, expecting a
-- message, and the driver `luad test` runs each test function through. Written
-- in Lua because `errors` and `receive` call functions that may yield (pcall
-- and process.receive wait across them; a C function could not).
local test = ...
local process = require("process")

local type, pairs, tostring, error = type, pairs, tostring, error
local string_format = string.format

local max_diff_lines = 20
local max_shown = 200 -- characters of one value in a message

-- A value as the messages show it: strings quoted, tables in brief.
local function show(v, depth)
  depth = depth or 0
  local t = type(v)
  if t == "string" then
    local s = string_format("%q", v)
    if #s > max_shown then s = s:sub(1, max_shown) .. "...\"" end
    return s
  elseif math.type(v) == "float" then
    -- Every digit, so that 3600.0000000001 does not show as 3600.0.
    local s = string_format("%.17g", v)
    if s == string_format("%.17g", math.floor(v)) and not s:find("[ein]") then
      s = string_format("%.1f", v)
    end
    return s
  elseif t ~= "table" then
    return tostring(v)
  elseif depth >= 2 then
    return "{...}"
  end
  local parts, n = {}, 0
  for k, item in pairs(v) do
    n = n + 1
    if n > 8 then parts[#parts + 1] = "..."; break end
    local key = type(k) == "string" and k:match("^[%a_][%w_]*$") and k or "[" .. show(k, 2) .. "]"
    parts[#parts + 1] = key .. " = " .. show(item, depth + 1)
  end
  local s = "{" .. table.concat(parts, ", ") .. "}"
  if #s > max_shown then s = s:sub(1, max_shown) .. "...}" end
  return s
end
test.show = show

local function path_of(path, k)
  if type(k) == "string" and k:match("^[%a_][%w_]*$") then return path .. "." .. k end
  return path .. "[" .. show(k, 2) .. "]"
end

-- Adds the differences of `a` (actual) and `b` (expected) below `path` to
-- `out`; `seen` pairs tables already compared (cycles end there).
local function differences(a, b, path, out, seen)
  if #out >= max_diff_lines then return end
  if a == b then return end
  if type(a) ~= "table" or type(b) ~= "table" then
    if type(a) == "number" and type(b) == "number" and a ~= a and b ~= b then return end -- NaN
    out[#out + 1] = string_format("  %s: expected %s, got %s", path == "" and "value" or path,
      show(b), show(a))
    return
  end
  seen[a] = seen[a] or {}
  if seen[a][b] then return end
  seen[a][b] = true
  for k, bv in pairs(b) do
    local av = a[k]
    if av == nil then
      if #out < max_diff_lines then
        out[#out + 1] = string_format("  %s: missing (expected %s)", path_of(path, k), show(bv))
      end
    else
      differences(av, bv, path_of(path, k), out, seen)
    end
  end
  for k, av in pairs(a) do
    if b[k] == nil and #out < max_diff_lines then
      out[#out + 1] = string_format("  %s: unexpected %s", path_of(path, k), show(av))
    end
  end
end

local function fail_with(message, note, level)
  if note ~= nil then message = tostring(note) .. ": " .. message end
  error(message, level + 1)
end

-- equal(actual, expected, note?): deep equality of plain values and tables
-- (keys and values, recursively); the message lists the differences.
function test.equal(actual, expected, note)
  local out = {}
  differences(actual, expected, "", out, {})
  if #out == 0 then return actual end
  if #out >= max_diff_lines then out[#out + 1] = "  ..." end
  if type(actual) ~= "table" or type(expected) ~= "table" then
    fail_with(string_format("expected %s, got %s", show(expected), show(actual)), note, 2)
  end
  fail_with("tables differ:\n" .. table.concat(out, "\n"), note, 2)
end

function test.not_equal(actual, unexpected, note)
  local out = {}
  differences(actual, unexpected, "", out, {})
  if #out == 0 then fail_with("expected a value other than " .. show(unexpected), note, 2) end
  return actual
end

-- truthy(v, note?): v is neither nil nor false; returns v.
function test.truthy(v, note)
  if not v then fail_with("expected a true value, got " .. show(v), note, 2) end
  return v
end

function test.falsy(v, note)
  if v then fail_with("expected nil or false, got " .. show(v), note, 2) end
  return v
end

-- near(actual, expected, tolerance?): numbers within tolerance (1e-9).
function test.near(actual, expected, tolerance, note)
  tolerance = tolerance or 1e-9
  if type(actual) ~= "number" or math.abs(actual - expected) > tolerance then
    fail_with(string_format("expected %s within %s, got %s", show(expected), show(tolerance),
      show(actual)), note, 2)
  end
  return actual
end

-- fail(message): fails the test here.
function test.fail(message)
  error("failed: " .. tostring(message or "test.fail()"), 2)
end

local function message_of(e)
  if type(e) == "table" and e.message ~= nil then return tostring(e.message) end
  return tostring(e)
end

-- errors(fn, expected?, ...): calls fn(...) and expects it to raise. `expected`
-- is text the error's message must contain, or a table of fields the error
-- must have ({kind = "timeout"}). Returns the error.
function test.errors(fn, expected, ...)
  if type(fn) ~= "function" then error("test.errors: expected a function, got " .. show(fn), 2) end
  local ok, e = pcall(fn, ...)
  if ok then fail_with("expected an error, but the function returned", nil, 2) end
  if type(expected) == "string" then
    if not message_of(e):find(expected, 1, true) then
      fail_with(string_format("expected an error containing %s, got %s", show(expected),
        show(message_of(e))), nil, 2)
    end
  elseif type(expected) == "table" then
    for k, v in pairs(expected) do
      local got = type(e) == "table" and e[k] or nil
      if got ~= v then
        fail_with(string_format("expected an error with %s = %s, got %s (%s)", tostring(k),
          show(v), show(got), show(message_of(e))), nil, 2)
      end
    end
  end
  return e
end

-- receive(topics?, timeout?): the next message on topics within timeout
-- virtual seconds (default 5), or the test fails saying what it waited for.
function test.receive(topics, timeout)
  local msg, err = process.receive(topics, timeout or 5)
  if msg then return msg end
  local what = topics == nil and "any message" or "a message on " .. show(topics)
  if err and err.kind == "timeout" then
    fail_with(string_format("expected %s within %s s, got none", what, tostring(timeout or 5)),
      nil, 2)
  end
  fail_with("expected " .. what .. ": " .. message_of(err), nil, 2)
end

-- no_message(topics?, timeout?): fails if a message on topics comes within
-- timeout virtual seconds (default 1).
function test.no_message(topics, timeout)
  local msg = process.receive(topics, timeout or 1)
  if msg then
    fail_with(string_format("expected no message, got %s: %s", show(msg.topic), show(msg.payload)),
      nil, 2)
  end
end

local json = require("json")

-- http{method?, url, status?, body?, json?, headers?, times?, error?}: the
-- table form of test.fake_http. `json` is sent as the body, encoded, with
-- content-type application/json; `error` is an error kind or {kind, message}.
function test.http(rule)
  if type(rule) ~= "table" then error("test.http: expected a rule table, got " .. show(rule), 2) end
  local body, headers = rule.body, rule.headers
  if rule.json ~= nil then
    local text, err = json.encode(rule.json)
    if not text then error("test.http: json cannot be encoded: " .. message_of(err), 2) end
    body = text
    headers = headers or {}
    local with = {}
    for k, v in pairs(headers) do with[k] = v end
    with["content-type"] = with["content-type"] or "application/json"
    headers = with
  end
  local kind, message = rule.error, nil
  if type(kind) == "table" then kind, message = kind.kind, kind.message end
  return test.fake_http(rule.method, rule.url, rule.status, body, headers, rule.times, kind, message)
end

-- --- the driver of luad test (server/test_runner.cpp) --------------------------

local function load_suite(module)
  local suite = require(module)
  if type(suite) ~= "table" then
    error(string_format("%s must return a table of test functions (it returned %s)", module,
      show(suite)), 0)
  end
  return suite
end

-- The suite's test names in the order they are written, and its permissions.
function test._list(module)
  local suite = load_suite(module)
  local names = {}
  for k, v in pairs(suite) do
    if type(k) == "string" and k:sub(1, 4) == "test" and type(v) == "function" then
      names[#names + 1] = k
    end
  end
  table.sort(names, function(x, y)
    local lx, ly = test._line(suite[x]), test._line(suite[y])
    if lx ~= ly then return lx < ly end
    return x < y
  end)
  local perms = suite.permissions
  if perms ~= nil and type(perms) ~= "table" then
    error(module .. ": permissions must be a list of permission strings", 0)
  end
  return names, perms or {}
end

-- Runs one test: setup, the test, then teardown even when the test failed.
function test._run(module, name)
  local suite = load_suite(module)
  local fn = suite[name]
  if type(fn) ~= "function" then error(module .. ": no test function " .. name, 0) end
  if suite.setup then suite.setup() end
  if not suite.teardown then return fn() end
  local ok, e = xpcall(fn, test._trace)
  suite.teardown()
  if not ok then error(e, 0) end
end

