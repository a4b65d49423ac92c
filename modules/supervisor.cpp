// The `supervisor` module and the C++ entry point: both spawn the embedded
// supervisor script (modules/supervisor.lua) with a spec.
#include "modules/supervisor.hpp"

#include <filesystem>

#include "modules/modules.hpp"
#include "runtime/code.hpp"
#include "runtime/lua_value.hpp"
#include "runtime/message_codec.hpp"
#include "runtime/process.hpp"
#include "runtime/result.hpp"
#include "supervisor_script.hpp"

namespace luad::modules {

namespace {

using runtime::error_kind;
using runtime::param_type;
using runtime::process;

runtime::chunk_ptr supervisor_chunk() {
  static const runtime::chunk_ptr chunk =
      runtime::compile(supervisor_source, "luad/supervisor.lua");
  return chunk;
}

runtime::result<runtime::pid> start_with(runtime::scheduler& s, runtime::spawn_options opts) {
  return s.spawn(supervisor_chunk(), std::move(opts));
}

// The C++ half of supervisor.start (the spec is the table at index 1): the
// supervisor's pid, or why it did not start.
runtime::result<runtime::pid> start_from_lua(lua_State* L) noexcept {
  try {
    process* self = process::of(L);
    runtime::code_cache& code = self->owner().code();
    std::string base =
        code.resolve(std::filesystem::path(self->script_name()).parent_path().string(), ".");
    std::string spec, reason;
    if (!runtime::encode_message(L, 1, spec, reason, self->context().limits.message_bytes)) {
      return runtime::fail(error_kind::invalid, "spec cannot be copied: " + reason);
    }
    runtime::spawn_options opts;
    if (self->context().script_root.empty()) {
      runtime::process_context ctx = self->context();
      ctx.script_root = base;
      opts.context = runtime::intern_context(std::move(ctx));
    } else {
      opts.context = self->shared_context();  // same limits, classes, owner
    }
    opts.link_to = self->id();
    runtime::append_packed_arg(opts.packed_args, spec);
    std::string parent, base_value;
    runtime::encode_value(runtime::value(self->id().to_string()), parent);
    runtime::encode_value(runtime::value(base), base_value);
    runtime::append_packed_arg(opts.packed_args, parent);
    runtime::append_packed_arg(opts.packed_args, base_value);
    return start_with(self->owner(), std::move(opts));
  } catch (const std::bad_alloc&) {
    return runtime::fail(error_kind::internal, "out of memory");  // (fits without allocating)
  } catch (const std::exception& e) {
    return runtime::fail(error_kind::internal, e.what());
  }
}

int supervisor_start(lua_State* L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  runtime::pid id;
  int n = 0;
  {
    runtime::result<runtime::pid> r = start_from_lua(L);
    if (r) {
      id = *r;
    } else {
      n = runtime::push_failure(L, r.error());
    }
  }
  if (n != 0) return n < 0 ? lua_error(L) : n;
  lua_pushlightuserdata(L, id.to_pointer());
  return 1;
}

constexpr param_type start_params[] = {{"spec", "luad.supervisor_spec"}};
constexpr param_type start_returns[] = {{"pid", "luad.pid?"}, {"err", "luad.error?"}};

constexpr runtime::function_type manifest[] = {
    {"start", start_params, start_returns,
     "Starts a supervisor process linked to the caller: spec = {strategy, intensity, period, "
     "backoff = {initial, max}, children = {{name, script, args, restart}}}."},
};

runtime::module_exports build() { return {{{"start", supervisor_start}}, {}}; }

}  // namespace

runtime::result<runtime::pid> start_supervisor(runtime::scheduler& s, const runtime::value& spec,
                                               const std::string& base, const std::string& root,
                                               runtime::pid parent,
                                               const runtime::process_context* ctx) {
  runtime::spawn_options opts;
  if (ctx) opts.ctx = *ctx;
  opts.ctx.script_root = root;
  opts.link_to = parent;
  opts.args = {spec, parent ? runtime::value(parent.to_string()) : runtime::value(),
               runtime::value(base)};
  return start_with(s, std::move(opts));
}

extern const runtime::module_def supervisor_module{"supervisor",
                                                   "Supervisors that restart processes by policy.",
                                                   runtime::nondeterministic, manifest, build};

}  // namespace luad::modules
