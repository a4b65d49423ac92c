-- Helper of spawn_beside_test.lua: a module required by its package name.
return {answer = 42}
