// The one include of the Lua C API (the C build, lua5.4): C linkage for C++.
#pragma once

extern "C" {
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
}
