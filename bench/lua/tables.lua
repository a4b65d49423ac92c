-- tables: table- and string-heavy work with no luad module, so the same file
-- runs in luad and in the stock lua5.4 (luad_bench --only cpu_peer times both
-- from outside). N rounds (default 30) each build 5,000 records with string
-- keys, format and concatenate them, sort them, and scan the text with
-- gsub/find. Returns an integer checksum, the same in both.
local rounds = math.tointeger(tonumber((...))) or 30
local records = 5000

local function build(seed)
  local list = {}
  for i = 1, records do
    local id = (i * 7919 + seed) % 100003
    table.insert(list, {
      id = id,
      name = string.format("user-%05d", id),
      score = (id * 31) % 1000,
      tags = { "t" .. (id % 7), "t" .. (id % 11) },
    })
  end
  return list
end

local function render(list)
  local lines = {}
  for i, r in ipairs(list) do
    lines[i] = r.name .. "=" .. r.score .. ";" .. table.concat(r.tags, ",")
  end
  return table.concat(lines, "\n")
end

local function scan(text)
  local sum = 0
  local _, words = text:gsub("%a+%-%d+", "")
  sum = sum + words
  for score in text:gmatch("=(%d+);") do
    sum = sum + tonumber(score)
  end
  local at = 1
  while true do
    local s, e = string.find(text, "t3,t", at, true)
    if not s then
      break
    end
    sum = sum + s % 13
    at = e + 1
  end
  return sum
end

local checksum = 0
for round = 1, rounds do
  local list = build(round)
  table.sort(list, function(a, b)
    if a.score ~= b.score then
      return a.score < b.score
    end
    return a.name < b.name
  end)
  local text = render(list)
  checksum = (checksum * 31 + scan(text) + #text + list[1].id) % 1000000007
end
return checksum
