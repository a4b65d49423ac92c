// The yield protocol: a binding pushes a pooled yield object and returns -1;
// the runtime trampoline turns that into lua_yieldk, the scheduler sends the
// object's command to a dispatcher, and the continuation calls handle_result.
#pragma once

#include <new>
#include <vector>

#include "runtime/command.hpp"
#include "runtime/lua.hpp"
#include "runtime/value.hpp"

namespace luad::runtime {

/// Describes one kind of yield a module can produce (listed in its exports so
/// startup can check that a dispatcher handles every command id). For a
/// pooled_yield, `command` is the id its make_command really sends.
struct yield_type {
  const char* name;
  command_id command;
};

/// A pending request of a process. Lives from `acquire` (in the binding) until
/// the continuation has run `handle_result` (or the process dies), then goes
/// back to a per-thread pool.
class yield_object {
 public:
  virtual ~yield_object() = default;
  /// The command to send; called once, on the worker, right after the yield.
  virtual command make_command() = 0;
  /// Pushes the results for the script and returns their count, or pushes a
  /// new yield object and returns -1 to wait again. `err` is null on success.
  /// Must not raise: the runtime releases the object after it returns.
  virtual int handle_result(lua_State* L, const value& v, const error* err) = 0;
  /// Returns the object to its pool.
  virtual void release() noexcept = 0;

  // How the process waits (process.receive overrides these).
  /// False when the wait sends no command (a receive without timeout).
  virtual bool has_command() const { return true; }
  /// True when a message arriving in the mailbox ends the wait.
  virtual bool wants_messages() const { return false; }
  /// True to keep the previous wait's token (and its pending command) instead
  /// of opening a new one: a receive woken by a message it did not select.
  virtual bool continues_wait() const { return false; }
};

/// Pool of one yield type, per thread. An object acquired on one worker may be
/// released on another; it then joins that worker's pool (capped).
///
/// `Id` is the command the yield sends: make_command is final and builds
/// `command{Id, derived.args()}`, and type() (for the module's exports) names
/// the same id, so the engine's startup check checks what is really sent.
/// Derived provides `static constexpr const char* type_name` and `value args()`.
template <class Derived, command_id Id>
class pooled_yield : public yield_object {
 public:
  static constexpr command_id id = Id;

  /// The yield type to list in the module's exports.
  static const yield_type* type() {
    static constexpr yield_type t{Derived::type_name, Id};
    return &t;
  }
  command make_command() final { return command{Id, static_cast<Derived*>(this)->args()}; }

  /// Takes an object from the pool and pushes it as a light userdata: the
  /// binding fills its fields and returns -1. Check arguments before this.
  static Derived* acquire(lua_State* L) {
    auto& free = pool();
    Derived* d;
    if (free.items.empty()) {
      d = new Derived();
    } else {
      d = free.items.back();
      free.items.pop_back();
    }
    lua_pushlightuserdata(L, static_cast<yield_object*>(d));
    return d;
  }
  void release() noexcept override {
    auto* d = static_cast<Derived*>(this);
    d->~Derived();
    new (d) Derived();
    auto& free = pool();
    if (free.items.size() < kPoolCap) {
      free.items.push_back(d);
    } else {
      delete d;
    }
  }

 private:
  static constexpr std::size_t kPoolCap = 4096;
  struct free_list {
    std::vector<Derived*> items;
    ~free_list() {
      for (Derived* d : items) delete d;
    }
  };
  static free_list& pool() {
    thread_local free_list list;
    return list;
  }
};

/// The one trampoline every module function is wrapped in (a C closure whose
/// upvalue is the binding). Turns a -1 return into a yield for the scheduler.
int trampoline(lua_State* L);

/// Pushes `fn` wrapped in the trampoline.
void push_binding(lua_State* L, lua_CFunction fn);

/// Waits for the command of the yield object on top of the stack, as a -1
/// return does, for a binding that goes on afterwards: when the answer comes,
/// handle_result pushes its n values and `then(L, LUA_YIELD, n)` runs with them
/// on top of the binding's stack; what `then` returns is the binding's result.
/// `then` may call Lua (lua_callk) and wait again with yield_command; without
/// it the n values are the binding's results. Write `return yield_command(L,
/// k);` in a binding or one of its continuations: it does not return while the
/// process waits (lua_yieldk jumps), only where a wait is impossible (the
/// answer is then an error, handled as any other).
int yield_command(lua_State* L, lua_KFunction then = nullptr);

}  // namespace luad::runtime
