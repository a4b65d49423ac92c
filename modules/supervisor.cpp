// The `supervisor` module and the C++ entry point: both spawn the embedded
// supervisor script (modules/supervisor.lua) with a spec.
#include "modules/supervisor.hpp"

#include <algorithm>
#include <memory>
#include <mutex>
#include <vector>

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

// The supervisor's own context: its children's, with every module class, and
// theirs kept for its spawns (process_context::child_context).
runtime::context_ptr supervisor_context(runtime::context_ptr children) {
  runtime::process_context ctx = *children;
  ctx.allowed_classes = runtime::all_classes;
  ctx.child_context = std::move(children);
  return std::make_shared<const runtime::process_context>(std::move(ctx));
}

// The statuses of supervisors started with one, by the supervisor's context:
// that context object is its alone (its children run under another), so a
// process can only ever report for itself. Pruned as supervisors end.
struct status_entry {
  std::weak_ptr<const runtime::process_context> ctx;
  std::shared_ptr<supervisor_status> status;
};
std::mutex statuses_mu;
std::vector<status_entry> statuses;

void keep_status(const runtime::context_ptr& ctx, std::shared_ptr<supervisor_status> status) {
  std::lock_guard lock(statuses_mu);
  std::erase_if(statuses, [](const status_entry& e) { return e.ctx.expired(); });
  statuses.push_back({ctx, std::move(status)});
}

std::shared_ptr<supervisor_status> status_of(const runtime::process_context* ctx) {
  std::lock_guard lock(statuses_mu);
  for (const status_entry& e : statuses)
    if (auto c = e.ctx.lock(); c.get() == ctx) return e.status;
  return nullptr;
}

// The C++ half of supervisor.start (the spec is the table at index 1): the
// supervisor's pid, or why it did not start.
runtime::result<runtime::pid> start_from_lua(lua_State* L) noexcept {
  try {
    process* self = process::of(L);
    runtime::code_cache& code = self->owner().code();
    std::string base = code.resolve_from(self->script_name(), ".");
    std::string spec, reason;
    if (!runtime::encode_message(L, 1, spec, reason, self->context().limits.message_bytes)) {
      return runtime::fail(error_kind::invalid, "spec cannot be copied: " + reason);
    }
    runtime::context_ptr children = self->shared_context();  // same limits, classes, owner
    if (self->context().script_root.empty()) {
      runtime::process_context ctx = self->context();
      ctx.script_root = base;
      children = runtime::intern_context(std::move(ctx));
    }
    runtime::spawn_options opts;
    opts.context = supervisor_context(std::move(children));
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

// The C++ half of supervisor.report: strings are read where Lua keeps them
// (lua_tolstring of a string neither allocates nor raises).
void report_from_lua(lua_State* L) noexcept {
  try {
    auto status = status_of(&process::of(L)->context());
    if (!status) return;  // not a supervisor the daemon started: nothing to tell
    auto text = [L](int i) {
      std::size_t n = 0;
      const char* s = lua_type(L, i) == LUA_TSTRING ? lua_tolstring(L, i, &n) : nullptr;
      return s ? std::string(s, std::min<std::size_t>(n, 4096)) : std::string();
    };
    std::int64_t restarts = lua_isinteger(L, 1) ? lua_tointeger(L, 1) : 0;
    supervisor_status::exit_seen e{text(3), text(4), text(5), text(2)};
    status->note_child(restarts, std::move(e));
  } catch (...) {
    // out of memory: the listing keeps the previous report
  }
}

int supervisor_report(lua_State* L) {
  report_from_lua(L);
  return 0;
}

constexpr param_type start_params[] = {{"spec", "luad.supervisor_spec"}};
constexpr param_type start_returns[] = {{"pid", "luad.pid?"}, {"err", "luad.error?"}};
constexpr param_type report_params[] = {{"restarts", "integer"},
                                        {"child", "string?"},
                                        {"reason", "string?"},
                                        {"kind", "string?"},
                                        {"message", "string?"}};

constexpr runtime::function_type manifest[] = {
    {"start", start_params, start_returns,
     "Starts a supervisor process linked to the caller: spec = {strategy, intensity, period, "
     "backoff = {initial, max}, children = {{name, script, args, restart}}}."},
    {"report",
     report_params,
     {},
     "How a supervisor process tells the daemon its restart count and its last child's exit "
     "(shown by `luad workflows`); does nothing in any other process."},
};

runtime::module_exports build() {
  return {{{"start", supervisor_start}, {"report", supervisor_report}}, {}};
}

}  // namespace

runtime::result<runtime::pid> start_supervisor(runtime::scheduler& s, const runtime::value& spec,
                                               const std::string& base, const std::string& root,
                                               runtime::pid parent,
                                               const runtime::process_context* ctx,
                                               std::shared_ptr<supervisor_status> status) {
  runtime::process_context children;
  if (ctx) children = *ctx;
  children.script_root = root;
  runtime::spawn_options opts;
  opts.context =
      supervisor_context(std::make_shared<const runtime::process_context>(std::move(children)));
  opts.link_to = parent;
  opts.args = {spec, parent ? runtime::value(parent.to_string()) : runtime::value(),
               runtime::value(base)};
  if (status) {
    keep_status(opts.context, status);
    opts.on_exit = [status](const runtime::exit_info& e) {
      status->note_end({std::string(runtime::reason_name(e.reason)),
                        e.reason == runtime::exit_reason::normal
                            ? std::string()
                            : std::string(runtime::kind_name(e.err.kind)),
                        e.err.message.substr(0, 4096),
                        {}});
    };
  }
  return start_with(s, std::move(opts));
}

extern const runtime::module_def supervisor_module{"supervisor",
                                                   "Supervisors that restart processes by policy.",
                                                   runtime::nondeterministic, manifest, build};

}  // namespace luad::modules
