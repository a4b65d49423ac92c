// What the process module's files share (modules/process.cpp: self, links,
// names, info; modules/process_spawn.cpp: spawn; modules/process_messages.cpp:
// send, receive, cancel): pid arguments and the nil, err answer. Internal to
// the module.
#pragma once

#include <string>

#include "runtime/lua.hpp"
#include "runtime/lua_value.hpp"
#include "runtime/module.hpp"
#include "runtime/owners.hpp"
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
/// anything else. With `named`, tells whether the argument was a name.
pid check_pid(lua_State* L, int arg, bool names = false, bool* named = nullptr);

/// The live process `id`, with a reference the caller must release, when the
/// calling process may `verb` it (runtime/owners.hpp); nullptr when it is not
/// alive; permission_denied when the owner rule refuses.
runtime::result<process*> find_checked(lua_State* L, pid id, runtime::owner_verb verb,
                                       bool by_name = false) noexcept;

/// Pushes nil and an error of `kind` with `message`; returns 2.
int fail(lua_State* L, error_kind kind, const char* message);

// The bindings of modules/process_spawn.cpp.
int process_spawn(lua_State* L);
int process_spawn_link(lua_State* L);
int process_spawn_monitor(lua_State* L);

// The bindings of modules/process_messages.cpp.
int process_send(lua_State* L);
int process_receive(lua_State* L);
/// process.recv: receive's wait, answered as values topic, payload, from.
int process_recv(lua_State* L);
int process_cancel(lua_State* L);
/// The yield type of process.receive (listed in the module's exports).
const runtime::yield_type* receive_yield_type();
/// process.receive in a durable run: a journaled command (process_messages.cpp).
const runtime::yield_type* durable_receive_yield_type();

}  // namespace luad::modules::process_parts
