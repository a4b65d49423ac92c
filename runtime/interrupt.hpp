// The one question long-running C code asks of the process it works for:
// must it stop now? C functions whose cost is not bounded by memory (the
// pattern matcher, the compile reader, table.move, string.rep) call
// check_interrupt every few thousand steps, so a kill or a limit lands within
// milliseconds even where no Lua hook can run.
#pragma once

struct lua_State;

namespace luad::runtime {

/// Raises a Lua error, and dooms the process so that Lua code cannot catch it,
/// when the process that owns `L` has been killed or is past a limit; returns
/// otherwise. Cheap (a few atomic loads); callers still call it only every
/// ~1000 steps. Worker thread, on the process's own state. A state that is not
/// a process's (a test's bare state) is never interrupted.
void check_interrupt(lua_State* L);

}  // namespace luad::runtime
