-- attack: loop inside a table.sort comparator, where Lua runs in a C call that cannot yield (no preemption)
-- expect: kill
table.sort({5, 4, 3, 2, 1}, function(a, b)
  while true do end
end)
