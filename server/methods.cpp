// The JSON-RPC methods: typed parameter readers, one handler per method, the
// method table and dispatch (methods.hpp).
#include "server/methods.hpp"

#include "server/cluster.hpp"

#include <boost/asio/post.hpp>

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "runtime/code.hpp"
#include "runtime/logging.hpp"
#include "runtime/message_codec.hpp"
#include "runtime/post.hpp"
#include "runtime/process.hpp"
#include "server/access.hpp"
#include "server/code_reload.hpp"
#include "server/compile_pool.hpp"
#include "server/connection.hpp"
#include "server/daemon.hpp"
#include "server/durable_runs.hpp"
#include "server/events.hpp"
#include "server/spawn_request.hpp"
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

runtime::result<runtime::pid> pid_param(const json::object& p) {
  auto text = text_param(p, "pid", true);
  if (!text) return text.error();
  auto id = runtime::pid::parse(*text);
  if (!id || !*id) return fail(error_kind::invalid, R"("pid" must look like "0.42")");
  return *id;
}

std::string no_process(runtime::pid pid) { return "no process " + pid.to_string(); }

// Who the request acts as (access.hpp): the peer, or with "as_uid" (root and
// the daemon's own uid only) that uid, unprivileged.
runtime::result<actor> actor_param(call& c) {
  const json::value* v = c.params.if_contains("as_uid");
  std::optional<std::uint32_t> as_uid;
  if (v && !v->is_null()) {
    if (!v->is_int64() || v->get_int64() < 0 || v->get_int64() > 0xFFFFFFFFll)
      return fail(error_kind::invalid, "\"as_uid\" must be a numeric uid");
    as_uid = static_cast<std::uint32_t>(v->get_int64());
  }
  return actor_of(c.from.peer(), as_uid);
}

// `to`: a pid ("0.42") or a registered name, of a live process.
struct target {
  runtime::pid pid;
  bool named = false;  // given by name (see the owner rule's `reachable`)
};
runtime::result<target> target_param(call& c) {
  auto to = text_param(c.params, "to", true);
  if (!to) return to.error();
  runtime::scheduler& sched = c.s.eng.scheduler();
  auto parsed = runtime::pid::parse(*to);
  bool named = !parsed || !*parsed;
  runtime::pid pid = named ? sched.whereis(*to) : *parsed;
  runtime::process* proc = pid ? sched.find(pid) : nullptr;
  if (!proc) return fail(error_kind::not_found, "no process or name '" + *to + "'");
  proc->release_ref();
  return target{pid, named};
}

// The live process `pid` (a reference the caller releases) if the request's
// actor may `verb` it; not_found or permission_denied otherwise.
runtime::result<runtime::process*> checked_process(call& c, runtime::pid pid,
                                                   runtime::owner_verb verb, bool named = false) {
  auto who = actor_param(c);
  if (!who) return who.error();
  runtime::process* proc = c.s.eng.scheduler().find(pid);
  if (!proc) return fail(error_kind::not_found, no_process(pid));
  runtime::status ok = may_act(*who, proc->context(), verb, named);
  if (!ok) {
    proc->release_ref();
    return ok.error();
  }
  return proc;
}

// For methods that also answer for ended processes (wait, subscribe): the
// live process's owner rule, else the remembered exit's owner.
runtime::status may_read(call& c, runtime::pid pid) {
  auto who = actor_param(c);
  if (!who) return who.error();
  if (runtime::process* proc = c.s.eng.scheduler().find(pid)) {
    runtime::status ok = may_act(*who, proc->context(), runtime::owner_verb::control);
    proc->release_ref();
    return ok;
  }
  if (auto owner = c.s.ev.exit_owner(pid)) return may_see_exit(*who, *owner);
  return runtime::done{};  // unknown: the method answers not_found
}

// --- spawn ------------------------------------------------------------------

// Everything a spawn needs but the code: limits, args, owner, profile
// (spawn_request.hpp). With "as_uid" (a privileged peer only) the process is
// that uid's, and its profile is chosen as for that uid with no group.
runtime::status spawn_options_of(call& c, runtime::spawn_options& so, peer& as) {
  auto who = actor_param(c);
  if (!who) return who.error();
  as = c.from.peer();
  if (who->uid != as.uid) as = peer{who->uid, static_cast<gid_t>(-1)};
  return spawn_options_from(c.s.cfg, c.s.eng, c.params, *who, as, so);
}

// Starts the process once its code is there (io thread): its pid, or its
// exit for "wait", or nullopt when a waiter answers later.
runtime::result<std::optional<json::value>> start_spawn(services& s,
                                                        const std::weak_ptr<connection>& from,
                                                        const json::value& id, bool wait,
                                                        const runtime::chunk_ptr& code,
                                                        runtime::spawn_options so) {
  events& ev = s.ev;
  so.on_exit = [&ev](const runtime::exit_info& e) { ev.on_submitted_exit(e); };
  auto spawned = s.eng.scheduler().spawn(code, std::move(so));
  if (!spawned) return spawned.error();
  runtime::pid pid = *spawned;
  if (!wait) return std::optional<json::value>(json::object{{"pid", pid.to_string()}});
  auto exit = ev.exit_or_wait(pid, from, id, [] { return true; });
  if (!exit) return exit.error();
  if (*exit) return std::optional<json::value>(std::move(**exit));
  return std::optional<json::value>();
}

// The same for a durable run (durable_runs.hpp): the run is recorded first,
// then started; the answer ({"run", "pid"}, or the exit) comes later.
void start_durable(services& s, const std::weak_ptr<connection>& from, const json::value& id,
                   bool wait, durable_request req, std::function<void(const outcome&)> answer) {
  s.runs->start(std::move(req), [&s, from, id = json::value(id), wait,
                                 answer](runtime::result<started_run> r) {
    if (!r) return answer(r.error());
    if (!r->pid)  // queued: this node holds all the runs it may; any node takes it
      return answer(json::value(json::object{{"run", r->run}, {"queued", true}}));
    if (!wait)
      return answer(json::value(json::object{{"run", r->run}, {"pid", r->pid.to_string()}}));
    auto exit = s.ev.exit_or_wait(r->pid, from, id, [] { return true; });
    if (!exit) return answer(exit.error());
    if (*exit) answer(json::value(std::move(**exit)));
    // else: exit_or_wait registered a waiter, which answers
  });
}

// The code to run: `source`, or `script` found under the roots. Compiling
// (and reading a script the cache has not checked lately) happens on the
// compile pool, never here on the io thread; the answer comes later. With
// `durable`, the request is kept with the run to start it again on resume.
outcome spawn(call& c) {
  auto source = text_param(c.params, "source");
  if (!source) return source.error();
  auto script = text_param(c.params, "script");
  if (!script) return script.error();
  if (source->empty() == script->empty())
    return fail(error_kind::invalid, R"(give exactly one of "script" and "source")");
  std::size_t limit = runtime::source_limit();
  if (limit && source->size() > limit) return runtime::source_too_large(source->size());
  auto so = std::make_shared<runtime::spawn_options>();
  peer as;
  if (auto ok = spawn_options_of(c, *so, as); !ok) return ok.error();
  auto wait_param = bool_param(c.params, "wait", false);
  if (!wait_param) return wait_param.error();
  bool wait = *wait_param;
  auto durable_param = bool_param(c.params, "durable", false);
  if (!durable_param) return durable_param.error();
  bool durable = *durable_param;
  if (durable && !c.s.runs)
    return fail(error_kind::unavailable, "durable runs need the daemon's data directory");
  auto name = text_param(c.params, "name");
  if (!name) return name.error();
  std::string shown = !script->empty() ? *script : name->empty() ? "submitted" : *name;
  json::object stored;  // the request, as a durable run keeps it
  if (durable) {
    for (const char* key : {"source", "script", "name", "args", "limits", "profile"})
      if (const json::value* v = c.params.if_contains(key); v && !v->is_null()) stored[key] = *v;
  }
  std::function<runtime::chunk_ptr()> work;
  if (!source->empty()) {
    work = [text = std::move(*source), name = name->empty() ? "submitted" : *name] {
      return runtime::compile(text, name);
    };
  } else {
    auto found = find_script(c.s.cfg, *script);  // only scripts under the roots
    if (!found) return found.error();
    so->ctx.script_root = found->root;
    runtime::code_cache& cache = c.s.eng.scheduler().code();
    if (runtime::chunk_ptr code = cache.fresh(found->path); code && !durable) {  // a cache hit
      auto started = start_spawn(c.s, c.from.weak_from_this(), c.id, wait, code, std::move(*so));
      if (!started) return started.error();
      if (*started) return std::move(**started);
      return c.later();
    }
    work = [&cache, path = found->path] { return cache.get(path); };
  }
  auto then = [&s = c.s, from = c.from.weak_from_this(), id = json::value(c.id), wait, so, durable,
               stored = std::move(stored), as, shown,
               answer = c.answer_later()](const runtime::chunk_ptr& code) mutable {
    if (durable) {
      if (code->compile_error) return answer(*code->compile_error);  // nothing to resume
      durable_request req{code, std::move(*so), std::move(stored), as, shown};
      return start_durable(s, from, id, wait, std::move(req), answer);
    }
    auto started = start_spawn(s, from, id, wait, code, std::move(*so));
    if (!started)
      answer(started.error());
    else if (*started)
      answer(std::move(**started));
    // else: exit_or_wait registered a waiter, which answers
  };
  c.s.compiler->run(std::move(work), std::move(then));
  return c.later();
}

// --- processes --------------------------------------------------------------

outcome wait(call& c) {
  auto pid = pid_param(c.params);
  if (!pid) return pid.error();
  if (auto ok = may_read(c, *pid); !ok) return ok.error();
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
  auto found = checked_process(c, *pid, runtime::owner_verb::control);
  if (!found) return found.error();
  runtime::process* proc = *found;
  json::object o{{"pid", pid->to_string()},
                 {"status", proc->status()},
                 {"script", proc->script_name()},
                 {"memory", proc->memory_used()},
                 {"instructions", proc->instructions()},
                 {"cpu", proc->cpu_seconds()}};
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
                   {"memory", proc.memory_used()},
                   {"cpu", proc.cpu_seconds()}};
    if (!proc.context().owner.empty()) o["owner"] = proc.context().owner;
    std::string_view on = proc.waiting_on();
    if (!on.empty()) o["waiting_on"] = std::string(on);
    listed.push_back(std::move(o));
  });
  return json::value(std::move(listed));
}

// A send to a name no process here has: in a cluster, to the durable run
// that registered it on another node (cluster_member::send_by_name).
outcome send_elsewhere(call& c, std::string name, std::string topic, std::string payload) {
  auto who = actor_param(c);
  if (!who) return who.error();
  c.s.cluster->send_by_name(*who, std::move(name), std::move(topic), std::move(payload),
                            [answer = c.answer_later()](runtime::status s) {
                              answer(s ? outcome(json::value(true)) : outcome(s.error()));
                            });
  return c.later();
}

outcome send(call& c) {
  auto to = target_param(c);
  auto topic = text_param(c.params, "topic", true);
  // (A missing target is named first, as before a cluster; a name no
  // process here has may be another node's.)
  auto name = text_param(c.params, "to", true);
  bool elsewhere = !to && to.error().kind == error_kind::not_found && c.s.cluster && name &&
                   !runtime::pid::parse(*name);
  if (!to && !elsewhere) return to.error();
  if (!topic) return topic.error();
  if (topic->empty() || topic->size() > 256)
    return fail(error_kind::invalid, "\"topic\" must be 1-256 bytes");
  const json::value* v = c.params.if_contains("payload");
  std::string bytes;
  runtime::encode_value(v ? proto::from_json(*v) : runtime::value(), bytes);
  if (elsewhere) return send_elsewhere(c, std::move(*name), std::move(*topic), std::move(bytes));
  auto found = checked_process(c, to->pid, runtime::verb_of_topic(*topic), to->named);
  if (!found) return found.error();
  runtime::process* proc = *found;
  runtime::status sent = runtime::done{};
  std::optional<runtime::outcome> taken;
  try {
    if (const runtime::command_sink* own = proc->own_sink()) {
      // A durable run: answered once the message is recorded in its inbox.
      taken = own->take_message(
          runtime::pid{}, *topic, bytes,
          [answer = c.answer_later(), ex = c.from.executor()](runtime::outcome o) {
            boost::asio::post(ex, [answer, o = std::move(o)] {
              answer(o.err ? outcome(*o.err) : outcome(json::value(true)));
            });
          });
    } else {
      sent = runtime::post(*proc, runtime::pid{}, *topic, bytes);  // its mailbox limits
    }
  } catch (...) {
    proc->release_ref();
    throw;
  }
  proc->release_ref();
  if (taken) return taken->err ? outcome(*taken->err) : outcome(c.later());
  if (!sent) return sent.error();
  return json::value(true);
}

outcome cancel(call& c) {
  auto to = target_param(c);
  if (!to) return to.error();
  auto reason = text_param(c.params, "reason");
  if (!reason) return reason.error();
  auto found = checked_process(c, to->pid, runtime::owner_verb::control);
  if (!found) return found.error();
  (*found)->release_ref();
  if (!c.s.eng.scheduler().cancel(to->pid, reason->empty() ? "canceled" : *reason))
    return fail(error_kind::limit, "out of memory (or the process just ended)");
  return json::value(true);
}

// Every live process of one owner, as killpg does (runtime::scheduler::kill_owner).
outcome kill_owner(call& c, const std::string& owner, const std::string& why) {
  auto who = actor_param(c);
  if (!who) return who.error();
  // The owner rule looks at one of its processes: an owner's processes share
  // who may control them (its workflow's `controllers`, or none).
  runtime::status ok = runtime::done{};
  bool any = false;
  c.s.eng.scheduler().visit([&](runtime::process& proc) {
    if (any || proc.context().owner != owner) return;
    any = true;
    ok = may_act(*who, proc.context(), runtime::owner_verb::control);
  });
  if (!ok) return ok.error();
  std::size_t n = any ? c.s.eng.scheduler().kill_owner(owner, why) : 0;
  return json::value(json::object{{"killed", n}});
}

outcome kill(call& c) {
  auto reason = text_param(c.params, "reason");
  if (!reason) return reason.error();
  std::string why = reason->empty() ? "killed by a client" : *reason;
  auto owner = text_param(c.params, "owner");
  if (!owner) return owner.error();
  if (!owner->empty()) {
    if (c.params.contains("pid"))
      return fail(error_kind::invalid, R"(give "pid" or "owner", not both)");
    return kill_owner(c, *owner, why);
  }
  auto pid = pid_param(c.params);
  if (!pid) return pid.error();
  auto found = checked_process(c, *pid, runtime::owner_verb::control);
  if (!found) return found.error();
  (*found)->request_kill(runtime::exit_reason::killed, why);
  (*found)->release_ref();
  return json::value(true);
}

// Follow one process: its past log lines now, then `log` notifications,
// then one `exit` notification that ends the subscription.
outcome subscribe(call& c) {
  auto pid = pid_param(c.params);
  if (!pid) return pid.error();
  if (auto ok = may_read(c, *pid); !ok) return ok.error();
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

// --- durable runs -------------------------------------------------------------

runtime::result<durable_runs*> runs_of(call& c) {
  if (!c.s.runs)
    return fail(error_kind::unavailable, "durable runs need the daemon's data directory");
  return c.s.runs;
}

// The run named by "run", if the request's actor may act on it (its owner,
// or a privileged peer).
struct run_target {
  durable_runs& runs;
  std::string run;
};
runtime::result<run_target> run_param(call& c) {
  auto runs = runs_of(c);
  if (!runs) return runs.error();
  auto run = text_param(c.params, "run", true);
  if (!run) return run.error();
  auto who = actor_param(c);
  if (!who) return who.error();
  auto owner = (*runs)->owner_of(*run);
  if (!owner) return owner.error();
  if (!who->privileged && who->owner != *owner)
    return fail(error_kind::permission_denied,
                "run " + *run + " belongs to " + *owner + ", not to " + who->owner);
  return run_target{**runs, *run};
}

// The cluster's nodes, their leases and load (server/cluster.hpp).
outcome cluster_method(call& c) {
  if (!c.s.cluster)
    return fail(error_kind::unavailable,
                "not in a cluster: the store is not on PostgreSQL ([storage] backend)");
  auto st = c.s.cluster->status();
  if (!st) return st.error();
  return json::value(std::move(*st));
}

outcome runs_method(call& c) {
  auto runs = runs_of(c);
  if (!runs) return runs.error();
  auto who = actor_param(c);
  if (!who) return who.error();
  auto listed = (*runs)->list(*who);
  if (!listed) return listed.error();
  return json::value(std::move(*listed));
}

outcome run_history(call& c) {
  auto t = run_param(c);
  if (!t) return t.error();
  auto h = t->runs.history(t->run);
  if (!h) return h.error();
  return json::value(std::move(*h));
}

outcome run_resume(call& c) {
  auto t = run_param(c);
  if (!t) return t.error();
  auto started = t->runs.resume(t->run);
  if (!started) return started.error();
  return json::value(json::object{{"run", started->run}, {"pid", started->pid.to_string()}});
}

outcome run_terminate(call& c) {
  auto t = run_param(c);
  if (!t) return t.error();
  if (auto ok = t->runs.terminate(t->run); !ok) return ok.error();
  return json::value(true);
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
    {"send", send, changes | may_wait},
    {"cancel", cancel, changes},
    {"kill", kill, changes},
    {"subscribe", subscribe, reads},
    {"unsubscribe", unsubscribe, reads},
    {"runs", runs_method, reads},
    {"cluster", cluster_method, reads},
    {"run_history", run_history, reads},
    {"run_resume", run_resume, changes},
    {"run_terminate", run_terminate, changes},
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
