-- attack: table.move over nils allocates nothing and loops 1e12 times in C
-- expect: kill
table.move({}, 1, 1e12, 2)
