-- attack: catch the kill with pcall and loop again (and again inside a sort comparator)
-- expect: kill
while true do
  pcall(function()
    while true do end
  end)
  pcall(table.sort, {3, 2, 1}, function()
    while true do end
  end)
end
