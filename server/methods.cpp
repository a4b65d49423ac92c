// The JSON-RPC methods: typed parameter readers, one handler per method, the
// method table and dispatch (methods.hpp).
#include "server/methods.hpp"

#include <filesystem>
#include <string>
#include <utility>

#include "runtime/code.hpp"
#include "runtime/logging.hpp"
#include "runtime/message_codec.hpp"
#include "runtime/process.hpp"
#include "server/access.hpp"
#include "server/code_reload.hpp"
#include "server/connection.hpp"
#include "server/daemon.hpp"
#include "server/events.hpp"
#include "server/workflows.hpp"

namespace luad::server {

namespace json = boost::json;
namespace fs = std::filesystem;
using runtime::error_kind;
using runtime::fail;

std::function<void(const outcome&)> call::answer_later() const {
  return [conn = from.weak_from_this(), id = id](const outcome& o) {
    if (auto c = conn.lock()) c->finish_deferred(id, o);
  };
}

namespace {

// --- parameters -------------------------------------------------------------

std::string quoted(const char* key) { return std::string("\"") + key + "\""; }

// A string parameter; "" when absent (or null) and not required.
runtime::result<std::string> text_param(const json::object& p, const char* key,
                                        bool required = false) {
  const json::value* v = p.if_contains(key);
  if (!v || v->is_null()) {
    if (required) return fail(error_kind::invalid, quoted(key) + " is required");
    return std::string();
  }
  if (!v->is_string()) return fail(error_kind::invalid, quoted(key) + " must be a string");
  return std::string(v->get_string());
}

runtime::result<bool> bool_param(const json::object& p, const char* key, bool fallback) {
  const json::value* v = p.if_contains(key);
  if (!v || v->is_null()) return fallback;
  if (!v->is_bool()) return fail(error_kind::invalid, quoted(key) + " must be true or false");
  return v->get_bool();
}

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

runtime::result<runtime::pid> pid_param(const json::object& p) {
  auto text = text_param(p, "pid", true);
  if (!text) return text.error();
  auto id = runtime::pid::parse(*text);
  if (!id || !*id) return fail(error_kind::invalid, R"("pid" must look like "0.42")");
  return *id;
}

// `to`: a pid ("0.42") or a registered name, of a live process.
runtime::result<runtime::pid> target_param(call& c) {
  auto to = text_param(c.params, "to", true);
  if (!to) return to.error();
  runtime::scheduler& sched = c.s.eng.scheduler();
  auto parsed = runtime::pid::parse(*to);
  runtime::pid pid = parsed && *parsed ? *parsed : sched.whereis(*to);
  runtime::process* proc = pid ? sched.find(pid) : nullptr;
  if (!proc) return fail(error_kind::not_found, "no process or name '" + *to + "'");
  proc->release_ref();
  return pid;
}

std::string no_process(runtime::pid pid) { return "no process " + pid.to_string(); }

// --- spawn ------------------------------------------------------------------

// The daemon's [limits] defaults, tightened by the request's "limits".
runtime::status read_limits(const json::object& p, runtime::limits& lim) {
  const json::value* lv = p.if_contains("limits");
  if (!lv) return runtime::done{};
  if (!lv->is_object()) return fail(error_kind::invalid, "\"limits\" must be an object");
  const json::object& l = lv->get_object();
  for (const auto& [k, v] : l)
    if (k != "memory" && k != "instructions" && k != "mailbox" && k != "message_bytes")
      return fail(error_kind::invalid, "unknown limit '" + std::string(k) +
                                           "' (memory, instructions, mailbox, message_bytes)");
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
  if (!a) return runtime::done{};
  if (!a->is_array()) return fail(error_kind::invalid, "\"args\" must be an array");
  for (const auto& v : a->get_array()) args.push_back(proto::from_json(v));
  return runtime::done{};
}

// The code to run: `source` compiled, or `script` found under the roots.
runtime::result<runtime::chunk_ptr> spawn_code(call& c, const std::string& source,
                                               const std::string& script,
                                               runtime::spawn_options& so) {
  if (!source.empty()) {
    auto name = text_param(c.params, "name");
    if (!name) return name.error();
    return runtime::compile(source, name->empty() ? "submitted" : *name);
  }
  auto found = find_script(c.s.cfg, script);  // only scripts under the roots
  if (!found) return found.error();
  so.ctx.script_root = found->root;
  return c.s.eng.scheduler().code().get(found->path);
}

// Everything a spawn needs but the code: limits, args, owner, profile.
runtime::status spawn_options_of(call& c, runtime::spawn_options& so) {
  so.ctx.limits = c.s.cfg.limits.process;
  so.ctx.owner = "uid:" + std::to_string(c.from.peer().uid);
  if (auto ok = read_limits(c.params, so.ctx.limits); !ok) return ok.error();
  if (auto ok = read_args(c.params, so.args); !ok) return ok.error();
  auto profile_name = text_param(c.params, "profile");
  if (!profile_name) return profile_name.error();
  auto profile = choose_profile(c.s.cfg, *profile_name, c.from.peer());
  if (!profile) return profile.error();
  if (*profile) so.ctx.permissions = (*profile)->permissions;
  return runtime::done{};
}

outcome spawn(call& c) {
  auto source = text_param(c.params, "source");
  if (!source) return source.error();
  auto script = text_param(c.params, "script");
  if (!script) return script.error();
  if (source->empty() == script->empty())
    return fail(error_kind::invalid, R"(give exactly one of "script" and "source")");
  runtime::spawn_options so;
  if (auto ok = spawn_options_of(c, so); !ok) return ok.error();
  auto code = spawn_code(c, *source, *script, so);
  if (!code) return code.error();
  events& ev = c.s.ev;
  so.on_exit = [&ev](const runtime::exit_info& e) { ev.on_submitted_exit(e); };
  auto spawned = c.s.eng.scheduler().spawn(*code, std::move(so));
  if (!spawned) return spawned.error();
  runtime::pid pid = *spawned;
  const json::value* wait = c.params.if_contains("wait");
  if (!wait || !wait->is_bool() || !wait->get_bool())
    return json::value(json::object{{"pid", pid.to_string()}});
  auto exit = ev.exit_or_wait(pid, c.from.weak_from_this(), c.id, [] { return true; });
  if (*exit) return json::value(std::move(**exit));
  return c.later();
}

// --- processes --------------------------------------------------------------

outcome wait(call& c) {
  auto pid = pid_param(c.params);
  if (!pid) return pid.error();
  runtime::scheduler& sched = c.s.eng.scheduler();
  auto exit = c.s.ev.exit_or_wait(*pid, c.from.weak_from_this(), c.id, [&] {
    runtime::process* proc = sched.find(*pid);
    if (proc) proc->release_ref();
    return proc != nullptr;
  });
  if (!exit) return exit.error();
  if (*exit) return json::value(std::move(**exit));
  return c.later();
}

outcome info(call& c) {
  auto pid = pid_param(c.params);
  if (!pid) return pid.error();
  runtime::process* proc = c.s.eng.scheduler().find(*pid);
  if (!proc) return fail(error_kind::not_found, no_process(*pid));
  json::object o{{"pid", pid->to_string()},
                 {"status", proc->status()},
                 {"script", proc->script_name()},
                 {"memory", proc->memory_used()},
                 {"instructions", proc->instructions()}};
  std::string_view on = proc->waiting_on();
  if (!on.empty()) o["waiting_on"] = std::string(on);
  proc->release_ref();
  return json::value(std::move(o));
}

outcome list(call& c) {
  auto status = text_param(c.params, "status");
  if (!status) return status.error();
  auto workflow = text_param(c.params, "workflow");
  if (!workflow) return workflow.error();
  std::string owner = workflow->empty() ? std::string() : "workflow:" + *workflow;
  json::array listed;
  c.s.eng.scheduler().visit([&](runtime::process& proc) {
    const char* st = proc.status();
    if (!status->empty() && *status != st) return;
    if (!owner.empty() && proc.context().owner != owner) return;
    json::object o{{"pid", proc.id().to_string()},
                   {"status", st},
                   {"script", proc.script_name()},
                   {"memory", proc.memory_used()}};
    if (!proc.context().owner.empty()) o["owner"] = proc.context().owner;
    std::string_view on = proc.waiting_on();
    if (!on.empty()) o["waiting_on"] = std::string(on);
    listed.push_back(std::move(o));
  });
  return json::value(std::move(listed));
}

outcome send(call& c) {
  auto pid = target_param(c);
  if (!pid) return pid.error();
  auto topic = text_param(c.params, "topic", true);
  if (!topic) return topic.error();
  if (topic->empty() || topic->size() > 256)
    return fail(error_kind::invalid, "\"topic\" must be 1-256 bytes");
  const json::value* v = c.params.if_contains("payload");
  std::string bytes;
  runtime::encode_value(v ? proto::from_json(*v) : runtime::value(), bytes);
  runtime::message* m = runtime::message::make(runtime::pid{}, *topic, bytes);
  if (!m) return fail(error_kind::limit, "out of memory");
  runtime::process* proc = c.s.eng.scheduler().find(*pid);
  if (!proc) {
    runtime::message::destroy(m);
    return fail(error_kind::not_found, "no process or name '" + pid->to_string() + "'");
  }
  proc->deliver(m);
  proc->release_ref();
  return json::value(true);
}

outcome cancel(call& c) {
  auto pid = target_param(c);
  if (!pid) return pid.error();
  auto reason = text_param(c.params, "reason");
  if (!reason) return reason.error();
  if (!c.s.eng.scheduler().cancel(*pid, reason->empty() ? "canceled" : *reason))
    return fail(error_kind::limit, "out of memory (or the process just ended)");
  return json::value(true);
}

outcome kill(call& c) {
  auto pid = pid_param(c.params);
  if (!pid) return pid.error();
  auto reason = text_param(c.params, "reason");
  if (!reason) return reason.error();
  if (!c.s.eng.scheduler().kill(*pid, runtime::exit_reason::killed,
                                reason->empty() ? "killed by a client" : *reason))
    return fail(error_kind::not_found, no_process(*pid));
  return json::value(true);
}

// Follow one process: its past log lines now, then `log` notifications,
// then one `exit` notification that ends the subscription.
outcome subscribe(call& c) {
  auto pid = pid_param(c.params);
  if (!pid) return pid.error();
  auto logs = bool_param(c.params, "logs", true);
  if (!logs) return logs.error();
  auto backlog = bool_param(c.params, "backlog", true);
  if (!backlog) return backlog.error();
  auto level_text = text_param(c.params, "level");
  if (!level_text) return level_text.error();
  runtime::log_level level = c.s.ev.backlog_level();
  if (!level_text->empty()) {
    auto parsed = runtime::parse_level(*level_text);
    if (!parsed) return fail(error_kind::invalid, "\"level\" is debug, info, warn or error");
    level = *parsed;
  }
  auto r =
      c.s.ev.subscribe(*pid, c.from.weak_from_this(), *logs, *backlog, level, c.s.eng.scheduler());
  if (!r) return r.error();
  return json::value(std::move(*r));
}

outcome unsubscribe(call& c) {
  auto pid = pid_param(c.params);
  if (!pid) return pid.error();
  return json::value(c.s.ev.unsubscribe(*pid, c.from.weak_from_this()));
}

// --- the daemon -------------------------------------------------------------

outcome ping(call&) { return json::value("pong"); }

outcome version(call&) { return json::value(json::object{{"version", luad_version}}); }

outcome stats(call& c) { return json::value(c.s.stats()); }

outcome shutdown(call& c) {
  c.s.shutdown();
  return json::value(true);
}

// With "action" start | stop | restart and "name", acts on one workflow
// first; then (always, once the action is done) lists them all.
outcome workflows_method(call& c) {
  auto action = text_param(c.params, "action");
  if (!action) return action.error();
  if (action->empty()) return json::value(c.s.wf.list());
  auto name = text_param(c.params, "name", true);
  if (!name) return name.error();
  workflows& wf = c.s.wf;
  const workflow_config* w = wf.named(*name);
  if (!w) return fail(error_kind::not_found, "no workflow named '" + *name + "'");
  if (*action != "start" && *action != "stop" && *action != "restart")
    return fail(error_kind::invalid, "\"action\" is start, stop or restart");
  bool running = wf.running(*name);
  if (*action == "start" && running)
    return fail(error_kind::unavailable, "workflow '" + *name + "' is already running");
  if (*action == "stop" && !running)
    return fail(error_kind::unavailable, "workflow '" + *name + "' is not running");
  // Starts it unless the action is stop, then lists.
  auto then = [&wf, w = *w, start = *action != "stop"]() -> outcome {
    if (start) {
      auto pid = wf.start(w, nullptr, true);
      if (!pid)
        return fail(error_kind::unavailable,
                    "workflow '" + w.name + "' could not start: " + pid.error().message);
    }
    return json::value(wf.list());
  };
  if (!running) return then();
  wf.stop(*name, [then, answer = c.answer_later()](bool) { answer(then()); });
  return c.later();
}

outcome reload(call& c) {
  // With "path": that file's code only. Without: the config, then all code.
  auto path = text_param(c.params, "path");
  if (!path) return path.error();
  code_reload& code = c.s.code;
  if (!path->empty()) {
    std::string canonical = fs::weakly_canonical(fs::absolute(*path)).string();
    return json::value(json::object{{"code", code.changed({canonical}, false)}});
  }
  try {
    c.s.wf.reload([&code, answer = c.answer_later()](json::object result) {
      result["code"] = code.changed({}, true);
      answer(json::value(std::move(result)));
    });
  } catch (const config_error& e) {
    return fail(error_kind::syntax, std::string("config not reloaded: ") + e.what());
  }
  return c.later();
}

// In PROTOCOL.md's order. The flags say what a method does; `may_wait` is
// checked: only those methods may answer later.
constexpr method k_methods[] = {
    {"ping", ping, reads},
    {"version", version, reads},
    {"spawn", spawn, changes | may_wait},
    {"wait", wait, reads | may_wait},
    {"info", info, reads},
    {"list", list, reads},
    {"workflows", workflows_method, changes | may_wait},
    {"reload", reload, changes | may_wait},
    {"send", send, changes},
    {"cancel", cancel, changes},
    {"kill", kill, changes},
    {"subscribe", subscribe, reads},
    {"unsubscribe", unsubscribe, reads},
    {"stats", stats, reads},
    {"shutdown", shutdown, changes},
};

}  // namespace

std::span<const method> method_table() { return k_methods; }

std::optional<json::object> dispatch(services& s, connection& from, const proto::request& req) {
  const method* m = nullptr;
  for (const method& candidate : k_methods)
    if (candidate.name == req.method) m = &candidate;
  if (!m)
    return proto::error_reply(req.id, proto::error_code::method_not_found,
                              "unknown method '" + req.method + "'");
  call c{s, from, req.params, req.id};
  try {
    outcome o = m->handler(c);
    if (c.deferred) {
      if (m->flags & may_wait) return std::nullopt;
      return proto::error_reply(req.id, proto::error_code::failed, "internal: deferred reply");
    }
    return o ? proto::result_reply(req.id, std::move(*o)) : proto::error_reply(req.id, o.error());
  } catch (const std::exception& e) {  // e.g. out of memory, a file system error
    return proto::error_reply(req.id, proto::error_code::failed, e.what());
  }
}

}  // namespace luad::server
