// What the process module's two files share (modules/process.cpp: self,
// spawn, links, names, info; modules/process_messages.cpp: send, receive,
// cancel): pid arguments and the nil, err answer. Internal to the module.
#pragma once

#include <string>

#include "runtime/lua.hpp"
#include "runtime/lua_value.hpp"
#include "runtime/module.hpp"
#include "runtime/pid.hpp"
#include "runtime/process.hpp"
#include "runtime/scheduler.hpp"

namespace luad::modules::process_parts {

using runtime::error;
using runtime::error_kind;
using runtime::pid;
using runtime::process;

/// Pushes `id` as a pid value (a light userdata).
inline void push_pid(lua_State* L, pid id) { lua_pushlightuserdata(L, id.to_pointer()); }

/// The pid registered as `name`, or an empty pid.
pid lookup_name(lua_State* L, const char* name, std::size_t len) noexcept;

/// A pid argument: a pid value, its text form ("0.42") or, where `names` is
/// set, a registered name (an unknown name gives an empty pid). Raises on
/// anything else.
pid check_pid(lua_State* L, int arg, bool names = false);

/// Pushes nil and an error of `kind` with `message`; returns 2.
int fail(lua_State* L, error_kind kind, const char* message);

// The bindings of modules/process_messages.cpp.
int process_send(lua_State* L);
int process_receive(lua_State* L);
int process_cancel(lua_State* L);
/// The yield type of process.receive (listed in the module's exports).
const runtime::yield_type* receive_yield_type();

}  // namespace luad::modules::process_parts
