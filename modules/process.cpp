// The `process` module: self, links and monitors, kill and exit, names and
// info, and the module's declaration. Spawn lives in modules/process_spawn.cpp;
// send, receive and cancel in modules/process_messages.cpp. Pids are light userdata (compare by
// value, usable as table keys) that print as "node.serial".
#include <cmath>
#include <string>

#include "modules/modules.hpp"
#include "modules/process_parts.hpp"
#include "runtime/command.hpp"
#include "runtime/lua_value.hpp"
#include "runtime/process.hpp"
#include "runtime/result.hpp"
#include "runtime/scheduler.hpp"
#include "runtime/yield.hpp"

namespace luad::modules {

namespace process_parts {

pid lookup_name(lua_State* L, const char* name, std::size_t len) noexcept {
  try {
    return process::of(L)->owner().whereis(std::string(name, len));
  } catch (...) {
    return {};
  }
}

pid check_pid(lua_State* L, int arg, bool names, bool* named) {
  // One type test and one read per call: a send's hot path.
  int type = lua_type(L, arg);
  if (named) *named = false;
  if (type == LUA_TLIGHTUSERDATA) {
    if (void* p = lua_touserdata(L, arg)) return pid::from_pointer(p);
  } else if (type == LUA_TSTRING) {
    std::size_t len;
    const char* s = lua_tolstring(L, arg, &len);
    if (auto p = pid::parse(std::string_view(s, len))) return *p;
    if (names) {
      if (named) *named = true;
      return lookup_name(L, s, len);
    }
  }
  luaL_argexpected(L, false, arg, names ? "pid or registered name" : "pid");
  return {};
}

runtime::result<process*> find_checked(lua_State* L, pid id, runtime::owner_verb verb,
                                       bool by_name) noexcept {
  try {
    process* self = process::of(L);
    process* other = id ? self->owner().find(id) : nullptr;
    if (!other || other == self) return other;
    runtime::status ok = runtime::may_act(self->context(), other->context(), verb, by_name);
    if (!ok) {
      other->release_ref();
      return ok.error();
    }
    return other;
  } catch (...) {
    return runtime::fail(error_kind::limit, "out of memory");  // (fits without allocating)
  }
}

int fail(lua_State* L, error_kind kind, const char* message) {
  lua_pushnil(L);
  runtime::push_error(L, error{kind, message, false, {}});
  return 2;
}

}  // namespace process_parts

namespace {

using namespace process_parts;  // NOLINT(google-build-using-namespace): the module's own parts
using runtime::param_type;

// --- self ------------------------------------------------------------------

int process_self(lua_State* L) {
  push_pid(L, process::of(L)->id());
  return 1;
}

// --- links and monitors -----------------------------------------------------------

// Links and monitors across owners are control (runtime/owners.hpp): an exit
// signal through a link could kill another owner's process.
int process_link(lua_State* L) {
  pid id = check_pid(L, 1);
  process* self = process::of(L);
  bool ok = false;
  int n = 0;
  {
    runtime::result<process*> other = find_checked(L, id, runtime::owner_verb::control);
    if (!other) {
      n = runtime::push_failure(L, other.error());
    } else if (*other) {
      ok = self->link(**other);
      (*other)->release_ref();
    }
  }
  if (n != 0) return n < 0 ? lua_error(L) : n;
  if (!ok) return fail(L, error_kind::not_found, "no such process");
  lua_pushboolean(L, 1);
  return 1;
}

int process_unlink(lua_State* L) {
  pid id = check_pid(L, 1);
  process* self = process::of(L);
  if (process* other = self->owner().find(id)) {
    self->unlink(*other);
    other->release_ref();
  }
  lua_pushboolean(L, 1);
  return 1;
}

int process_monitor(lua_State* L) {
  pid id = check_pid(L, 1);
  process* self = process::of(L);
  std::uint64_t ref = self->owner().next_monitor_ref();
  bool ok = false;
  int n = 0;
  {
    runtime::result<process*> other = find_checked(L, id, runtime::owner_verb::control);
    if (!other) {
      n = runtime::push_failure(L, other.error());
    } else if (*other) {
      ok = (*other)->add_monitor(ref, self->id());
      (*other)->release_ref();
    }
  }
  if (n != 0) return n < 0 ? lua_error(L) : n;
  if (!ok) runtime::send_noproc_down(*self, id, ref);
  lua_pushinteger(L, static_cast<lua_Integer>(ref));
  return 1;
}

int process_demonitor(lua_State* L) {
  pid id = check_pid(L, 1);
  auto ref = static_cast<std::uint64_t>(luaL_checkinteger(L, 2));
  process* self = process::of(L);
  process* other = self->owner().find(id);
  bool removed = other && other->remove_monitor(ref, self->id());
  if (other) other->release_ref();
  lua_pushboolean(L, removed);
  return 1;
}

int process_trap_exits(lua_State* L) {
  luaL_checktype(L, 1, LUA_TBOOLEAN);
  process* self = process::of(L);
  lua_pushboolean(L, self->traps_exits());
  self->set_trap_exits(lua_toboolean(L, 1) != 0);
  return 1;
}

// process.on_upgrade(on): UPGRADE messages {files} when the code it runs
// changes on disk (the daemon watches); process.unload(name) then lets the
// next require load a package's new code.
int process_on_upgrade(lua_State* L) {
  luaL_checktype(L, 1, LUA_TBOOLEAN);
  process* self = process::of(L);
  lua_pushboolean(L, self->owner().set_upgrade_interest(*self, lua_toboolean(L, 1) != 0));
  return 1;
}

int process_unload(lua_State* L) {
  const char* name = luaL_checkstring(L, 1);
  lua_pushboolean(L, runtime::unload_package(L, name));
  return 1;
}

// --- kill, exit, names ---------------------------------------------------------

// Ends the calling process now: yields to the scheduler with `why`.
int end_self(lua_State* L, runtime::suspend_kind how) {
  process* self = process::of(L);
  if (!lua_isyieldable(L)) return luaL_error(L, "cannot end the process from inside a C call");
  self->set_suspend(how);
  return lua_yield(L, 0);
}

// Kills `id` if the caller may (runtime/owners.hpp): true if it was alive.
runtime::result<bool> kill_other(lua_State* L, pid id, const char* why, std::size_t len) noexcept {
  try {
    runtime::result<process*> other = find_checked(L, id, runtime::owner_verb::control);
    if (!other) return other.error();
    if (!*other) return false;
    (*other)->request_kill(runtime::exit_reason::killed, std::string(why, len));
    (*other)->release_ref();
    return true;
  } catch (...) {
    return false;
  }
}

int process_kill(lua_State* L) {
  pid id = check_pid(L, 1, true);
  std::size_t len = 0;
  const char* why = luaL_optlstring(L, 2, "killed", &len);
  process* self = process::of(L);
  if (id == self->id()) {
    (void)kill_other(L, id, why, len);  // records the reason; the process is running, so:
    self->doom(runtime::exit_reason::killed, "killed");
    return end_self(L, runtime::suspend_kind::doom);
  }
  bool killed = false;
  int n = 0;
  {
    runtime::result<bool> r = kill_other(L, id, why, len);
    if (r) {
      killed = *r;
    } else {
      n = runtime::push_failure(L, r.error());
    }
  }
  if (n != 0) return n < 0 ? lua_error(L) : n;
  lua_pushboolean(L, killed);
  return 1;
}

int process_exit(lua_State* L) {
  std::size_t len = 0;
  const char* reason = luaL_optlstring(L, 1, "normal", &len);
  process* self = process::of(L);
  if (std::string_view(reason, len) == "normal") return end_self(L, runtime::suspend_kind::exit);
  self->set_exit_message(std::string_view(reason, len));
  return end_self(L, runtime::suspend_kind::doom);
}

runtime::status register_self(lua_State* L, const char* name, std::size_t len) noexcept {
  try {
    process* self = process::of(L);
    runtime::status r = self->owner().register_name(std::string(name, len), *self);
    if (r) self->has_name = true;
    return r;
  } catch (...) {
    return runtime::fail(error_kind::invalid, "out of memory");  // (fits without allocating)
  }
}

int process_register(lua_State* L) {
  std::size_t len;
  const char* name = luaL_checklstring(L, 1, &len);
  luaL_argcheck(L, len > 0 && len <= 255, 1, "name must be 1 to 255 bytes");
  luaL_argcheck(L, !pid::parse(std::string_view(name, len)), 1, "a name cannot look like a pid");
  int n = 0;
  {
    runtime::status r = register_self(L, name, len);
    if (!r) n = runtime::push_failure(L, r.error());
  }
  if (n != 0) return n < 0 ? lua_error(L) : n;
  lua_pushboolean(L, 1);
  return 1;
}

int process_unregister(lua_State* L) {
  process* self = process::of(L);
  lua_pushboolean(L, self->owner().unregister_name(self->id()));
  self->has_name = false;
  return 1;
}

// Another owner's name is found only by those who may send to it by name.
int process_whereis(lua_State* L) {
  std::size_t len;
  const char* name = luaL_checklstring(L, 1, &len);
  pid id = lookup_name(L, name, len);
  int n = 0;
  {
    runtime::result<process*> p = find_checked(L, id, runtime::owner_verb::send, true);
    if (!p) {
      n = runtime::push_failure(L, p.error());
    } else if (*p) {
      (*p)->release_ref();
    } else {
      id = pid{};  // ended meanwhile
    }
  }
  if (n != 0) return n < 0 ? lua_error(L) : n;
  if (!id) {
    lua_pushnil(L);
  } else {
    push_pid(L, id);
  }
  return 1;
}

// --- info and cancel ------------------------------------------------------------

// process.info(pid): a snapshot of another process (or nil if it is not
// alive); another owner's only with control over it.
int process_info(lua_State* L) {
  pid id = lua_isnoneornil(L, 1) ? process::of(L)->id() : check_pid(L, 1, true);
  process* p = nullptr;
  int n = 0;
  {
    runtime::result<process*> found = find_checked(L, id, runtime::owner_verb::control);
    if (found) {
      p = *found;
    } else {
      n = runtime::push_failure(L, found.error());
    }
  }
  if (n != 0) return n < 0 ? lua_error(L) : n;
  if (!p) {
    lua_pushnil(L);
    return 1;
  }
  const char* status = p->status();
  std::string_view waiting_on = p->waiting_on();
  auto memory = static_cast<lua_Integer>(p->memory_used());
  auto instructions = static_cast<lua_Integer>(p->instructions());
  double cpu = p->cpu_seconds();
  auto queued = static_cast<lua_Integer>(p->mailbox().length());
  bool traps = p->traps_exits();
  // A thread-local copy: nothing with a destructor on this frame when Lua raises.
  thread_local std::string owner;
  try {
    owner = p->context().owner;
  } catch (...) {
    owner.clear();
  }
  p->release_ref();
  lua_createtable(L, 0, 8);
  lua_pushlstring(L, owner.data(), owner.size());
  lua_setfield(L, -2, "owner");
  push_pid(L, id);
  lua_setfield(L, -2, "pid");
  lua_pushstring(L, status);
  lua_setfield(L, -2, "status");
  if (!waiting_on.empty()) {
    lua_pushlstring(L, waiting_on.data(), waiting_on.size());
    lua_setfield(L, -2, "waiting_on");
  }
  lua_pushinteger(L, memory);
  lua_setfield(L, -2, "memory");
  lua_pushinteger(L, instructions);
  lua_setfield(L, -2, "instructions");
  lua_pushnumber(L, cpu);
  lua_setfield(L, -2, "cpu");
  lua_pushinteger(L, queued);
  lua_setfield(L, -2, "mailbox");
  lua_pushboolean(L, traps);
  lua_setfield(L, -2, "trap_exits");
  return 1;
}

// --- the module ---------------------------------------------------------------

int pid_tostring(lua_State* L) {
  void* p = lua_touserdata(L, 1);
  if (!p) {
    lua_pushliteral(L, "null");
    return 1;
  }
  pid id = pid::from_pointer(p);
  lua_pushfstring(L, "%d.%I", static_cast<int>(id.node), static_cast<lua_Integer>(id.serial));
  return 1;
}

// Pids print as text: light userdata share one metatable per state.
void install_pid_metatable(lua_State* L, int) {
  lua_pushlightuserdata(L, nullptr);
  lua_createtable(L, 0, 3);
  lua_pushcfunction(L, pid_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pushliteral(L, "pid");
  lua_setfield(L, -2, "__name");
  lua_pushboolean(L, 0);
  lua_setfield(L, -2, "__metatable");
  lua_setmetatable(L, -2);
  lua_pop(L, 1);
}

constexpr param_type pid_return[] = {{"pid", "luad.pid"}};
constexpr param_type spawn_params[] = {{"script", "string"}, {"...", "any"}};
constexpr param_type spawn_returns[] = {{"pid", "luad.pid?"}, {"err", "luad.error?"}};
constexpr param_type send_params[] = {
    {"to", "luad.pid|string"}, {"topic", "string"}, {"payload", "any"}};
constexpr param_type send_returns[] = {{"ok", "boolean?"}, {"err", "luad.error?"}};
constexpr param_type receive_params[] = {{"topics", "string|string[]|nil"}, {"timeout", "number?"}};
constexpr param_type receive_returns[] = {{"msg", "{topic: string, from: luad.pid, payload: any}?"},
                                          {"err", "luad.error?"}};
constexpr param_type recv_returns[] = {
    {"topic", "string?"}, {"payload_or_err", "any"}, {"from", "luad.pid?"}};

constexpr param_type pid_param[] = {{"pid", "luad.pid|string"}};
constexpr param_type link_returns[] = {{"ok", "boolean?"}, {"err", "luad.error?"}};
constexpr param_type demonitor_params[] = {{"pid", "luad.pid|string"}, {"ref", "integer"}};
constexpr param_type trap_params[] = {{"on", "boolean"}};
constexpr param_type trap_returns[] = {{"previous", "boolean"}};
constexpr param_type spawn_monitor_returns[] = {{"pid", "luad.pid?"},
                                                {"ref_or_err", "integer|luad.error"}};
constexpr param_type info_params[] = {{"pid", "luad.pid|string|nil"}};
constexpr param_type info_return[] = {
    {"info",
     "{pid: luad.pid, owner: string, status: string, waiting_on: string?, memory: integer, "
     "instructions: integer, cpu: number, mailbox: integer, trap_exits: boolean}?"},
    {"err", "luad.error?"}};
constexpr param_type cancel_params[] = {{"pid", "luad.pid|string"}, {"reason", "string?"}};
constexpr param_type kill_params[] = {{"pid", "luad.pid|string"}, {"reason", "string?"}};
constexpr param_type bool_return[] = {{"ok", "boolean"}};
constexpr param_type kill_returns[] = {{"ok", "boolean?"}, {"err", "luad.error?"}};
constexpr param_type ref_returns[] = {{"ref", "integer?"}, {"err", "luad.error?"}};
constexpr param_type exit_params[] = {{"reason", "string?"}};
constexpr param_type unload_params[] = {{"name", "string"}};
constexpr param_type name_param[] = {{"name", "string"}};
constexpr param_type whereis_return[] = {{"pid", "luad.pid?"}, {"err", "luad.error?"}};
constexpr param_type register_returns[] = {{"ok", "boolean?"}, {"err", "luad.error?"}};

constexpr runtime::function_type manifest[] = {
    {"self", {}, pid_return, "The pid of the calling process."},
    {"spawn", spawn_params, spawn_returns,
     "Starts a script (a path relative to the caller's script, inside the script root) as a "
     "new process with copies of the arguments."},
    {"send", send_params, send_returns,
     "Sends a deep copy of payload under topic; never blocks. Sending to a dead pid is not an "
     "error. Another owner's process: nil, err(permission_denied) unless the caller has "
     "process:send or the owner made the name reachable (system topics such as CANCEL need "
     "process:control)."},
    {"receive", receive_params, receive_returns,
     "Takes the oldest message with one of the topics (any when nil), waiting up to timeout "
     "seconds (forever when nil; 0 polls). Other messages stay queued in order."},
    {"recv", receive_params, recv_returns,
     "receive, answered as three values: topic, payload, from (nil, err on a timeout). No "
     "table is built, so it is the cheaper form in a hot loop."},
    {"kill", kill_params, kill_returns,
     "Ends a process at once with reason killed (reason text in its error); true if it was "
     "alive. Cannot be caught. Another owner's process: nil, err(permission_denied) unless the "
     "caller has process:control."},
    {"exit",
     exit_params,
     {},
     "Ends the calling process: normally when reason is nil or \"normal\", otherwise with "
     "an error carrying reason."},
    {"register", name_param, register_returns,
     "Registers a name for the calling process; the name vanishes when it ends (a workflow's "
     "stays reserved to it). Another owner's name: nil, err(permission_denied)."},
    {"unregister", {}, bool_return, "Removes the calling process's name; true if it had one."},
    {"whereis", name_param, whereis_return,
     "The pid registered under name, or nil; another owner's name only if the caller may send "
     "to it (else nil, err(permission_denied))."},
    {"spawn_link", spawn_params, spawn_returns,
     "spawn, linked to the caller before the child runs."},
    {"spawn_monitor", spawn_params, spawn_monitor_returns,
     "spawn, monitored by the caller before the child runs; returns the pid and the ref."},
    {"link", pid_param, link_returns,
     "Links the caller and pid: an abnormal exit of either kills the other unless it traps "
     "exits. nil, err(not_found) if pid is not alive; nil, err(permission_denied) for another "
     "owner's process without process:control."},
    {"unlink", pid_param, bool_return, "Removes the link between the caller and pid."},
    {"monitor", pid_param, ref_returns,
     "The caller will get a DOWN message (payload.ref = the returned ref) when pid ends; at once "
     "if it is not alive. nil, err(permission_denied) for another owner's process without "
     "process:control."},
    {"demonitor", demonitor_params, bool_return, "Cancels monitor ref of pid; true if it was set."},
    {"info", info_params, info_return,
     "A snapshot of a live process (the caller when pid is nil): status (runnable, running, "
     "waiting, receiving), what it waits on (\"message\" or a command such as \"clock.sleep\"), "
     "memory bytes, instructions used (counted only under an instruction limit), cpu seconds "
     "(its turns' time), queued messages; nil if not alive; nil, err(permission_denied) for "
     "another owner's process without process:control."},
    {"cancel", cancel_params, send_returns,
     "Sends a CANCEL message {reason} that the process may handle, unlike kill. Another "
     "owner's process: nil, err(permission_denied) unless the caller has process:control."},
    {"trap_exits", trap_params, trap_returns,
     "When on, exits of linked processes arrive as EXIT messages instead of killing the caller."},
    {"on_upgrade", trap_params, trap_returns,
     "When on, the caller gets an UPGRADE message {files} when its script or a package it "
     "requires changes on disk (in the daemon); returns the previous setting."},
    {"unload", unload_params, bool_return,
     "Forgets file package name in the caller's require cache, so the next require loads its "
     "current code; false if it was not loaded."},
};

runtime::module_exports build() {
  return {{{"self", process_self},
           {"spawn", process_spawn},
           {"send", process_send},
           {"receive", process_receive},
           {"recv", process_recv},
           {"kill", process_kill},
           {"exit", process_exit},
           {"register", process_register},
           {"unregister", process_unregister},
           {"whereis", process_whereis},
           {"spawn_link", process_spawn_link},
           {"spawn_monitor", process_spawn_monitor},
           {"link", process_link},
           {"unlink", process_unlink},
           {"monitor", process_monitor},
           {"demonitor", process_demonitor},
           {"trap_exits", process_trap_exits},
           {"info", process_info},
           {"on_upgrade", process_on_upgrade},
           {"unload", process_unload},
           {"cancel", process_cancel}},
          {receive_yield_type(), durable_receive_yield_type()}};
}

}  // namespace

extern const runtime::module_def process_module{"process",
                                                "Processes: spawn, send and receive messages.",
                                                runtime::nondeterministic,
                                                manifest,
                                                build,
                                                install_pid_metatable};

}  // namespace luad::modules
