// A spawn request's options (spawn_request.hpp): limits, args, profile.
#include "server/spawn_request.hpp"

#include <filesystem>
#include <string>

#include "proto/json_rpc.hpp"

namespace luad::server {

namespace json = boost::json;
using runtime::error_kind;
using runtime::fail;

namespace {

// A non-negative integer field of `limits`, or `fallback`; never above `cap`
// (a client may tighten the configured defaults, not loosen them).
template <class T>
runtime::result<T> limit_param(const json::object& limits, const char* key, T fallback, T cap) {
  const json::value* v = limits.if_contains(key);
  if (!v || v->is_null()) return fallback;
  std::string name = std::string("\"limits.") + key + "\"";
  if (!v->is_int64() || v->get_int64() < 0)
    return fail(error_kind::invalid, name + " must be a non-negative integer");
  auto n = static_cast<std::uint64_t>(v->get_int64());
  if (cap != 0 && (n == 0 || n > cap))
    return fail(error_kind::permission_denied,
                name + " may not exceed " + std::to_string(cap) + " (the daemon's default)");
  return static_cast<T>(n);
}

// The daemon's [limits] defaults, tightened by the request's "limits".
runtime::status read_limits(const json::object& p, runtime::limits& lim) {
  const json::value* lv = p.if_contains("limits");
  if (!lv || lv->is_null()) return runtime::done{};
  if (!lv->is_object()) return fail(error_kind::invalid, "\"limits\" must be an object");
  const json::object& l = lv->get_object();
  for (const auto& [k, v] : l)
    if (k != "memory" && k != "instructions" && k != "cpu" && k != "mailbox" &&
        k != "message_bytes")
      return fail(error_kind::invalid, "unknown limit '" + std::string(k) +
                                           "' (memory, instructions, cpu, mailbox, message_bytes)");
  if (const json::value* c = l.if_contains("cpu"); c && !c->is_null()) {
    if (!c->is_number() || c->to_number<double>() < 0)
      return fail(error_kind::invalid, "\"limits.cpu\" must be a non-negative number of seconds");
    double cpu = c->to_number<double>();
    if (lim.cpu != 0 && (cpu == 0 || cpu > lim.cpu))
      return fail(
          error_kind::permission_denied,
          "\"limits.cpu\" may not exceed " + std::to_string(lim.cpu) + " (the daemon's default)");
    lim.cpu = cpu;
  }
  auto memory = limit_param(l, "memory", lim.memory, lim.memory);
  if (!memory) return memory.error();
  auto instructions = limit_param(l, "instructions", lim.instructions, lim.instructions);
  if (!instructions) return instructions.error();
  auto mailbox = limit_param(l, "mailbox", lim.mailbox, lim.mailbox);
  if (!mailbox) return mailbox.error();
  auto message_bytes = limit_param(l, "message_bytes", lim.message_bytes, lim.message_bytes);
  if (!message_bytes) return message_bytes.error();
  lim.memory = *memory;
  lim.instructions = *instructions;
  lim.mailbox = *mailbox;
  lim.message_bytes = *message_bytes;
  return runtime::done{};
}

runtime::status read_args(const json::object& p, runtime::value::array& args) {
  const json::value* a = p.if_contains("args");
  if (!a || a->is_null()) return runtime::done{};
  if (!a->is_array()) return fail(error_kind::invalid, "\"args\" must be an array");
  for (const auto& v : a->get_array()) args.push_back(proto::from_json(v));
  return runtime::done{};
}

}  // namespace

runtime::status spawn_options_from(const config& cfg, engine& eng, const json::object& params,
                                   const actor& who, peer as, runtime::spawn_options& so) {
  so.ctx.limits = cfg.limits.process;
  so.ctx.owner = who.owner;
  if (auto ok = read_limits(params, so.ctx.limits); !ok) return ok.error();
  if (auto ok = read_args(params, so.args); !ok) return ok.error();
  const json::value* pv = params.if_contains("profile");
  if (pv && !pv->is_null() && !pv->is_string())
    return fail(error_kind::invalid, "\"profile\" must be a string");
  std::string profile_name = pv && pv->is_string() ? std::string(pv->get_string()) : "";
  auto profile = choose_profile(cfg, profile_name, as);
  if (!profile) return profile.error();
  if (*profile) so.ctx.permissions = (*profile)->permissions;
  so.ctx.account = account_of(eng.scheduler().owners(), as, *profile, profile_name);  // its quotas
  return runtime::done{};
}

runtime::process_context workflow_context(engine& eng, const workflow_config& w) {
  runtime::process_context ctx;
  ctx.limits = w.limits;
  ctx.permissions = w.permissions;
  ctx.allowed_classes = w.classes;
  ctx.owner = "workflow:" + w.name;
  // Its own account (no quotas) keeps the names its processes register across
  // restarts; other owners reach or control it only as its config says.
  ctx.account = eng.scheduler().owners().account(ctx.owner, ctx.owner, {}, true);
  ctx.reachable_by = w.reachable;
  ctx.controlled_by = w.controllers;
  return ctx;
}

void workflow_spawn_options(engine& eng, const workflow_config& w, runtime::spawn_options& so) {
  so.ctx = workflow_context(eng, w);
  so.ctx.script_root = std::filesystem::path(w.script).parent_path().string();
  for (const auto& a : w.args) so.args.emplace_back(a);
}

}  // namespace luad::server
