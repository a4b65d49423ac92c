-- Three folders down: require("deep.a.b.c").
return { depth = 3, args = table.pack(...) }
