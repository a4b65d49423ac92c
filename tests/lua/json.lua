-- The json module as a script sees it: encode/decode, json.null, and the
-- nil, err returns of invalid input. Runs inside a luad process.
local json = require("json")

local function check_error(err, message)
  assert(type(err) == "table", "expected an error table, got " .. type(err))
  assert(err.kind == "invalid", "kind: " .. tostring(err.kind))
  assert(err.retryable == false)
  if message then
    assert(err.message == message, "message: " .. tostring(err.message))
  end
  assert(tostring(err) == "invalid: " .. err.message)
end

-- Scalars, and integers staying distinct from floats.
assert(json.encode(nil) == "null")
assert(json.encode(json.null) == "null")
assert(json.encode(true) == "true")
assert(json.encode(42) == "42")
assert(json.encode(-7) == "-7")
assert(json.encode(1.0) == "1.0")
assert(json.encode(0.1) == "0.1")
assert(json.encode(math.maxinteger) == "9223372036854775807")
assert(json.encode("a\"b\n") == '"a\\"b\\n"')
assert(json.encode("é") == '"é"')
assert(math.type(json.decode("3")) == "integer")
assert(math.type(json.decode("3.0")) == "float")
assert(math.type(json.decode("1e2")) == "float")
assert(json.decode("-0") == 0 and math.type(json.decode("-0")) == "integer")
assert(json.decode('"\\u00e9\\ud83d\\ude00"') == "é" .. utf8.char(0x1F600))

-- Tables: sorted keys, arrays, empty table as an object.
assert(json.encode({b = 1, a = 2, c = {3, 4}}) == '{"a":2,"b":1,"c":[3,4]}')
assert(json.encode({}) == "{}")
assert(json.encode({{}, {{}}}) == "[{},[{}]]")
local shared = {1}
assert(json.encode({x = shared, y = shared}) == '{"x":[1],"y":[1]}')

-- Determinism: the same table built in different orders encodes the same.
local t1, t2 = {}, {}
for i = 1, 50 do t1["k" .. i] = i end
for i = 50, 1, -1 do t2["k" .. i] = i end
assert(json.encode(t1) == json.encode(t2))

-- json.null keeps positions in arrays and keys in objects.
local arr = json.decode("[1,null,3,null]")
assert(#arr == 4 and arr[2] == json.null and arr[4] == json.null)
assert(json.encode(arr) == "[1,null,3,null]")
local obj = json.decode('{"a":null,"b":[null]}')
assert(obj.a == json.null and obj.b[1] == json.null)
assert(json.encode(obj) == '{"a":null,"b":[null]}')
assert(json.decode("null") == json.null)
assert(type(json.null) == "userdata")

-- Round trips.
local doc = '{"list":[1,2.5,"x",true,false,null],"nested":{"deep":{"k":-1}},"s":"tab\\tend"}'
assert(json.encode(json.decode(doc)) == doc)
local value = {name = "luad", tags = {"a", "b"}, ratio = 0.25, count = 3, ok = true}
local back = json.decode(json.encode(value))
assert(back.name == "luad" and back.tags[2] == "b" and back.ratio == 0.25)
assert(math.type(back.count) == "integer" and back.ok == true)

-- Nesting limits: 200 levels both ways (docs/modules.md).
local deep = string.rep("[", 200) .. string.rep("]", 200)
assert(json.decode(deep) ~= nil)
local v, err = json.decode(string.rep("[", 201) .. string.rep("]", 201))
assert(v == nil)
check_error(err, "line 1 column 201: nesting deeper than 200 levels")

-- Decode errors.
v, err = json.decode("[1,\n 2,]")
assert(v == nil)
check_error(err, "line 2 column 4: unexpected character ']'")
check_error(select(2, json.decode("")), "line 1 column 1: unexpected end of input")
check_error(select(2, json.decode("{} x")), "line 1 column 4: unexpected data after the JSON value")
check_error(select(2, json.decode('{"a":1,"a":2}')), 'line 1 column 8: duplicate key "a"')
check_error(select(2, json.decode("01")), "line 1 column 1: leading zeros are not allowed")
check_error(select(2, json.decode("NaN")), "line 1 column 1: unexpected character 'N'")
check_error(select(2, json.decode('"\\ud800"')))

-- Encode errors.
local function encode_error(x, message)
  local text, e = json.encode(x)
  assert(text == nil, "expected failure, got " .. tostring(text))
  check_error(e, message)
end
encode_error({f = print}, "cannot convert a function (at .f)")
encode_error({1, 2, nil, 4}, "table has integer keys that are not exactly 1..n")
encode_error({1, x = 2}, "table mixes integer and string keys")
encode_error({[true] = 1}, "table has a key of type boolean")
encode_error({[1.5] = 1}, "table has a non-integer number key")
encode_error(0 / 0, "cannot encode NaN")
encode_error(math.huge, "cannot encode infinity")
encode_error("\xff", "string is not valid UTF-8")
encode_error(coroutine.create(print), "cannot convert a thread")
local cyc = {}
cyc.me = cyc
encode_error(cyc, "cycle detected (at .me)")
local deep_table = {1}
for _ = 2, 200 do deep_table = {deep_table} end  -- 200 levels encode and come back
local deep1 = string.rep("[", 200) .. "1" .. string.rep("]", 200)
assert(json.encode(deep_table) == deep1)
assert(json.encode(json.decode(deep1)) == deep1)
local _, deep_err = json.encode({deep_table})
check_error(deep_err)
assert(deep_err.message:find("^nesting deeper than 200 levels"), deep_err.message)

-- Misuse raises.
assert(not pcall(json.encode))
assert(not pcall(json.decode, {}))
assert(not pcall(json.decode))

return true
