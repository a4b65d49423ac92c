-- A quote service, the example of docs/testing.md (tested by quotes_test.lua):
-- answers each {topic = "get", payload = {symbol = S}} message with a "quote"
-- message {symbol, price} or {symbol, error}. Prices come from the quotes API
-- (its base URL is the first argument) and are kept in the store, so a symbol
-- is fetched once; a 503 is retried after 1, 2 and 4 seconds.
--   luad run --allow http:quotes.example.com --allow store:quotes quotes.lua
local process = require("process")
local http = require("http")
local json = require("json")
local store = require("store")
local time = require("time")

local api = ... or "https://quotes.example.com"

local function fetch(symbol)
  local delay = 1
  for attempt = 1, 4 do
    local resp, err = http.get(api .. "/v1/quotes/" .. symbol, {timeout = 10})
    if resp and resp.status == 200 then
      local body = json.decode(resp.body)
      if type(body) == "table" and type(body.price) == "number" then return body.price end
      return nil, "the quotes API sent no price"
    end
    if resp and resp.status ~= 503 then return nil, "the quotes API answered " .. resp.status end
    if not resp and err.kind ~= "unavailable" and err.kind ~= "timeout" then return nil, err.message end
    if attempt < 4 then
      time.sleep(delay)
      delay = delay * 2
    end
  end
  return nil, "the quotes API is unavailable"
end

while true do
  local msg = process.receive({"get", "stop"})
  if msg.topic == "stop" then return "stopped" end
  local symbol = type(msg.payload) == "table" and msg.payload.symbol
  if type(symbol) ~= "string" or not symbol:match("^%u+$") then
    process.send(msg.from, "quote", {error = "a symbol of capital letters expected"})
  else
    local price, err = store.get("price:" .. symbol), nil
    if price == nil then
      price, err = fetch(symbol)
      if price then assert(store.set("price:" .. symbol, price)) end
    end
    process.send(msg.from, "quote", {symbol = symbol, price = price, error = err})
  end
end
