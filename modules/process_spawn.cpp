// process.spawn, spawn_link and spawn_monitor (the `process` module, see
// modules/process.cpp): where a child's script is, and starting the child. In
// a durable run a child is a durable run of its own (workflow.start).
#include <filesystem>
#include <string>

#include "modules/modules.hpp"
#include "modules/process_parts.hpp"
#include "runtime/code.hpp"
#include "runtime/lua_value.hpp"
#include "runtime/message_codec.hpp"
#include "runtime/process.hpp"
#include "runtime/result.hpp"
#include "runtime/scheduler.hpp"
#include "runtime/script_path.hpp"

namespace luad::modules {

runtime::result<std::string> child_script_path(lua_State* L, const char* script,
                                               std::string& canon_root) {
  runtime::process* self = runtime::process::of(L);
  runtime::code_cache& code = self->owner().code();
  const std::string& root = self->context().script_root;
  canon_root = root.empty() ? code.resolve_from(self->script_name(), ".") : root;
  std::string target;
  try {
    target = code.resolve_from(self->script_name(), script);
  } catch (const std::filesystem::filesystem_error& e) {  // too long, a loop: the name's fault
    return runtime::script_name_error(script, e.code());
  }
  if (!runtime::path_inside(canon_root, target)) {
    return runtime::fail(
        runtime::error_kind::permission_denied,
        std::string("script '") + script + "' is outside the script root '" + canon_root + "'");
  }
  if (!self->owner().permitted(*self, "spawn", target)) {
    return runtime::fail(runtime::error_kind::permission_denied,
                         std::string("this process may not spawn '") + script + "'");
  }
  return target;
}

namespace process_parts {

namespace {

// The C++ half of spawn: the child's pid, or why it did not start.
struct spawn_link_options {
  bool link = false;
  std::uint64_t monitor_ref = 0;
};

runtime::result<pid> spawn_child(lua_State* L, const char* script, int first_arg,
                                 spawn_link_options how) noexcept {
  try {
    process* self = process::of(L);
    if (self->durable()) {
      // process.spawn itself starts a durable child (workflow.start); exits
      // do not reach a durable run, so links and monitors cannot be kept.
      return runtime::fail(error_kind::invalid,
                           "process.spawn_link and spawn_monitor: not in a durable run (exit "
                           "signals are not journaled); start a durable child with process.spawn "
                           "or workflow.start and wait for its end with workflow.wait");
    }
    runtime::code_cache& code = self->owner().code();
    std::string canon_root;
    runtime::result<std::string> target = child_script_path(L, script, canon_root);
    if (!target) return target.error();
    runtime::spawn_options opts;
    // Children share their parent's context, or the one it keeps for them.
    const runtime::context_ptr& theirs =
        self->context().child_context ? self->context().child_context : self->shared_context();
    if (theirs->script_root.empty()) {  // the first spawn below a top-level script fixes the root
      runtime::process_context ctx = *theirs;
      ctx.script_root = canon_root;
      opts.context = runtime::intern_context(std::move(ctx));
    } else {
      opts.context = theirs;
    }
    opts.commands = self->sink_for_children();  // luad test's fakes reach children too
    if (how.link) opts.link_to = self->id();
    if (how.monitor_ref) {
      opts.monitored_by = self->id();
      opts.monitor_ref = how.monitor_ref;
    }
    int top = lua_gettop(L);
    std::string one, reason;
    for (int i = first_arg; i <= top; ++i) {
      one.clear();
      if (!runtime::encode_message(L, i, one, reason, self->context().limits.message_bytes)) {
        return runtime::fail(error_kind::invalid, "argument #" + std::to_string(i - first_arg + 1) +
                                                      " cannot be copied: " + reason);
      }
      runtime::append_packed_arg(opts.packed_args, one);
    }
    runtime::chunk_ptr chunk = code.get(*target, opts.context->pinned_code.get());
    return self->owner().spawn(std::move(chunk), std::move(opts));
  } catch (const std::bad_alloc&) {
    return runtime::fail(error_kind::internal, "out of memory");  // (fits without allocating)
  } catch (const std::exception& e) {
    return runtime::fail(error_kind::internal, std::string("spawn failed: ") + e.what());
  }
}

int spawn_with(lua_State* L, spawn_link_options how) {
  const char* script = luaL_checkstring(L, 1);
  pid child;
  int n = 0;
  {
    runtime::result<pid> r = spawn_child(L, script, 2, how);
    if (r) {
      child = *r;
    } else {
      n = runtime::push_failure(L, r.error());
    }
  }
  if (n != 0) return n < 0 ? lua_error(L) : n;
  push_pid(L, child);
  if (!how.monitor_ref) return 1;
  lua_pushinteger(L, static_cast<lua_Integer>(how.monitor_ref));
  return 2;
}

// In a durable run a child is a durable run too (workflow.start): spawn
// returns its run id.
}  // namespace

int process_spawn(lua_State* L) {
  if (process::of(L)->durable()) return workflow_start_call(L);
  return spawn_with(L, {});
}
int process_spawn_link(lua_State* L) { return spawn_with(L, {true, 0}); }
int process_spawn_monitor(lua_State* L) {
  return spawn_with(L, {false, process::of(L)->owner().next_monitor_ref()});
}

}  // namespace process_parts

}  // namespace luad::modules
