-- attack: returns strings that are not UTF-8 (raw bytes, overlongs, surrogates, past U+10FFFF, NUL), nested and as keys
-- expect: normal
local bad = { "\xff\xfe", "\xc0\xaf", "\xe0\x80\xaf", "\xed\xa0\x80", "\xed\xa0\xbd\xed\xb8\x80",
  "\xf4\x90\x80\x80", "a\0b", "\xe2\x82" }
local t = {}
for i, s in ipairs(bad) do t[s] = i end
return bad, t, table.unpack(bad)
