// The trampoline: a binding's -1 becomes lua_yieldk; the continuation hands
// the command's outcome to the yield object's handle_result.
#include "runtime/yield.hpp"

#include "runtime/process.hpp"

namespace luad::runtime {

namespace {

int resume_after_command(lua_State* L, int status, lua_KContext then);

// The continuation of a binding that waits with yield_command travels as the
// context of lua_yieldk (0: none). POSIX (dlsym) needs function pointers to
// fit in a data pointer, so they fit in an intptr_t.
lua_KContext as_context(lua_KFunction then) { return reinterpret_cast<lua_KContext>(then); }
lua_KFunction as_continuation(lua_KContext then) {
  return reinterpret_cast<lua_KFunction>(then);  // NOLINT(performance-no-int-to-ptr)
}

// The binding pushed a yield object: record it and suspend the process.
int suspend_for_command(lua_State* L, lua_KContext then) {
  auto* y = static_cast<yield_object*>(lua_touserdata(L, -1));
  lua_pop(L, 1);
  process* p = process::of(L);
  p->wait().suspend_for(y);
  if (!lua_isyieldable(L)) {
    // Called from a C function without continuation (a metamethod, a sort
    // comparator): answer the command with an error instead of suspending.
    p->wait().fail_now({error_kind::invalid,
                        "cannot wait here: a C call without continuation (metamethod, sort "
                        "comparator, gsub callback) is on the stack",
                        false,
                        {}});
    return resume_after_command(L, LUA_OK, then);
  }
  // The turn ends; the worker opens the wait and sends its command
  // (process::after_command_yield).
  p->set_suspend(suspend_kind::command);
  return lua_yieldk(L, 0, then, resume_after_command);
}

int resume_after_command(lua_State* L, int, lua_KContext then) {
  wait_slot& w = process::of(L)->wait();
  yield_object* y = w.take_pending();
  const outcome& o = w.result();
  int n = y->handle_result(L, o.val, o.err ? &*o.err : nullptr);
  w.clear_result();  // a big result (an HTTP body) need not outlive its use
  if (n >= 0) {
    y->release();
    return then ? as_continuation(then)(L, LUA_YIELD, n) : n;
  }
  // Waiting again: the object on top may be `y` itself (a receive that goes on).
  if (lua_touserdata(L, -1) != y) y->release();
  return suspend_for_command(L, then);
}

}  // namespace

int trampoline(lua_State* L) {
  auto fn = reinterpret_cast<lua_CFunction>(lua_touserdata(L, lua_upvalueindex(1)));
  int n = fn(L);
  return n < 0 ? suspend_for_command(L, 0) : n;
}

void push_binding(lua_State* L, lua_CFunction fn) {
  lua_pushlightuserdata(L, reinterpret_cast<void*>(fn));
  lua_pushcclosure(L, trampoline, 1);
}

int yield_command(lua_State* L, lua_KFunction then) {
  return suspend_for_command(L, as_context(then));
}

}  // namespace luad::runtime

// Under ThreadSanitizer: Lua raises errors and yields with a longjmp, and
// Debian's liblua5.4.a, built with _FORTIFY_SOURCE, calls glibc's
// __longjmp_chk for it, which GCC 12's libtsan does not intercept (it does
// longjmp). TSan then never unwinds its shadow stack past the frames a
// longjmp skips: a worker's shadow stack grew by ~20,000 frames over the
// hostile corpus, and every stack trace TSan stored (one per allocation
// site) grew with it, to 12 GB of stack depot in the daemon. This definition
// wins over libc's for the static Lua library and goes through the
// intercepted longjmp; _setjmp is intercepted already. TSan builds only: the
// release build keeps glibc's check.
#if defined(__SANITIZE_THREAD__)
#include <csetjmp>
extern "C" [[noreturn]] void __longjmp_chk(std::jmp_buf env,
                                           int value) {  // NOLINT(bugprone-reserved-identifier)
  std::longjmp(env, value);
}
#endif
