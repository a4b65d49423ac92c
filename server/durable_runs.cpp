// Durable runs as the daemon keeps them (see durable_runs.hpp); their cluster
// side is durable_cluster.cpp, children and waits durable_children.cpp.
#include "server/durable_runs.hpp"

#include <spdlog/spdlog.h>
#include <boost/asio/post.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <future>
#include <random>
#include <utility>

#include "dispatcher/durable.hpp"
#include "proto/json_rpc.hpp"
#include "runtime/logging.hpp"
#include "runtime/message_codec.hpp"
#include "runtime/process.hpp"
#include "server/durable_runs_parts.hpp"
#include "server/spawn_request.hpp"

namespace luad::server {

namespace json = boost::json;
using dispatcher::journal_entry;
using dispatcher::run_record;
using dispatcher::run_state;
using runtime::error_kind;
using runtime::fail;

namespace durable_runs_parts {

double unix_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace durable_runs_parts

using namespace durable_runs_parts;

namespace {

std::string hex16(std::uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

// A stored value (message-codec bytes) as JSON, or null.
json::value decoded_json(const std::string& bytes) {
  if (bytes.empty()) return nullptr;
  auto v = runtime::decode_value(bytes);
  return v ? proto::to_json(*v) : json::value(nullptr);
}

// A run's `detail` (JSON text) as JSON; text that does not parse stays text.
json::value detail_json(const std::string& text) {
  if (text.empty()) return nullptr;
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  return ec ? json::value(text) : v;
}

std::string report(std::string_view reason, std::string_view message) {
  return json::serialize(json::object{{"reason", reason}, {"message", message}});
}

}  // namespace

std::string new_run_id() {
  static std::mutex mu;
  static std::mt19937_64 rng{
      std::random_device{}() ^
      static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count())};
  std::lock_guard lock(mu);
  return "r-" + hex16(rng());
}

namespace durable_runs_parts {

runtime::status written(const std::function<void(dispatcher::journal_backend::written_fn)>& write) {
  auto p = std::make_shared<std::promise<runtime::status>>();
  auto f = p->get_future();
  write([p](runtime::status s) { p->set_value(std::move(s)); });
  return f.get();
}

double tick_of(const run_record& rec) {
  if (rec.spawn.find("\"tick\"") == std::string::npos) return 0;  // (most runs: skip the parse)
  boost::system::error_code ec;
  json::value v = json::parse(rec.spawn, ec);
  const json::value* t = !ec && v.is_object() ? v.get_object().if_contains("tick") : nullptr;
  return t && t->is_number() ? t->to_number<double>() : 0;
}

run_record fresh_record(const std::string& owner, const std::string& script,
                        const runtime::chunk& code, const runtime::value::array& args) {
  run_record rec;
  rec.id = new_run_id();
  rec.owner = owner;
  rec.script = script;
  rec.code_hash = hex16(runtime::content_hash(code.bytecode));
  runtime::encode_value(runtime::value(args), rec.args);
  rec.state = run_state::running;
  rec.created = rec.updated = unix_now();
  return rec;
}

}  // namespace durable_runs_parts

durable_runs::durable_runs(const config& cfg, engine& eng, events& ev, boost::asio::io_context& io)
    : cfg_(cfg), eng_(eng), ev_(ev), io_(io) {}

durable_runs::~durable_runs() = default;

void durable_runs::start(durable_request req, started_fn then) {
  run_record rec = fresh_record(req.so.ctx.owner, req.script, *req.code, req.so.args);
  // A node of a cluster that holds all the runs it may leaves the run to
  // whichever node claims it first.
  // (Counted as starting until it is live, so that spawns at once do not
  // take more than the room.)
  rec.queued = cluster_ && room() == 0;
  bool counted = cluster_ && !rec.queued;
  if (counted) ++starting_;
  req.spawn["peer"] = json::object{{"uid", req.as.uid}, {"gid", req.as.gid}};
  req.spawn["owner"] = rec.owner;
  rec.spawn = json::serialize(req.spawn);
  auto shared = std::make_shared<durable_request>(std::move(req));
  eng_.storage().create_run(
      rec, [this, rec, shared, counted, then = std::move(then)](runtime::status s) {
        // On the storage's thread: spawning is thread-safe; answering is the io
        // thread's.
        runtime::result<started_run> r =
            !s           ? runtime::result<started_run>(s.error())
            : rec.queued ? runtime::result<started_run>(started_run{rec.id, {}})
                         : launch(rec, {}, {}, shared->code, std::move(shared->so));
        if (counted) --starting_;
        boost::asio::post(io_, [then, r = std::move(r)]() mutable { then(std::move(r)); });
      });
}

runtime::result<started_run> durable_runs::launch(const run_record& rec,
                                                  std::vector<journal_entry> past,
                                                  std::vector<dispatcher::inbox_message> inbox,
                                                  runtime::chunk_ptr code,
                                                  runtime::spawn_options so) {
  auto r = std::make_shared<live_run>();
  r->rec = rec;
  {
    std::lock_guard lock(mu_);
    if (stopping_) return fail(error_kind::unavailable, "the daemon is shutting down");
    if (live_.count(rec.id)) return fail(error_kind::invalid, "run " + rec.id + " is running");
    live_[rec.id] = r;
  }
  std::weak_ptr<live_run> weak = r;
  auto on_stop = [this, weak](std::string report) {
    if (auto run = weak.lock()) suspend(run, std::move(report));
  };
  auto on_continue = [this, weak](std::string next, runtime::value args, runtime::completion done) {
    if (auto run = weak.lock())
      continue_as_new(run, std::move(next), std::move(args), std::move(done));
  };
  dispatcher::durable_sink::child_hooks children{
      [this, weak](std::string child, runtime::value args, runtime::completion done) {
        if (auto run = weak.lock())
          start_child(run->rec, std::move(child), std::move(args), std::move(done));
      },
      [this, weak](std::string run, double timeout, runtime::completion done) {
        if (auto parent = weak.lock())
          wait_run(parent->rec.owner, std::move(run), timeout, std::move(done));
      }};
  auto sink = std::make_shared<dispatcher::durable_sink>(
      rec.id, rec.code_hash, std::move(past), eng_.commands(), eng_.storage(), std::move(on_stop),
      cfg_.limits.journal_steps, std::move(on_continue), std::move(children));
  sink->limit_inbox(so.ctx.limits.mailbox, so.ctx.limits.mailbox_bytes);
  sink->restore_inbox(std::move(inbox));
  so.commands = sink;
  r->sink = sink;
  so.on_exit = [this, r, sink](const runtime::exit_info& e) {
    sink->abandon();
    ev_.on_submitted_exit(e);
    ended(r, e);
  };
  auto spawned = eng_.scheduler().spawn(code, std::move(so));
  if (!spawned) {
    std::lock_guard lock(mu_);
    live_.erase(rec.id);
    return spawned.error();
  }
  bool end_now;
  {
    std::lock_guard lock(mu_);
    r->pid = *spawned;
    end_now = r->why != live_run::ending::none;  // suspended before we knew its pid
  }
  if (end_now) eng_.scheduler().kill(*spawned, runtime::exit_reason::killed, "run suspended");
  return started_run{rec.id, *spawned};
}

void durable_runs::suspend(const std::shared_ptr<live_run>& r, std::string why) {
  runtime::pid pid;
  bool moved = why.find(dispatcher::fenced_marker) != std::string::npos;
  {
    std::lock_guard lock(mu_);
    if (r->why != live_run::ending::none) return;
    r->why = moved ? live_run::ending::moved : live_run::ending::suspended;
    pid = r->pid;
  }
  if (moved) {  // its journal refused this node: another owns the run now
    runtime::logger().info("durable run {} moved to another node; its process here ends",
                           r->rec.id);
    if (pid) eng_.scheduler().kill(pid, runtime::exit_reason::killed, "run moved to another node");
    return;
  }
  runtime::logger().warn("durable run {} suspended: {}", r->rec.id, why);
  eng_.storage().set_state(
      r->rec.id, run_state::suspended, std::move(why), [id = r->rec.id](auto s) {
        if (!s)
          runtime::logger().error("durable run {}: state not written: {}", id, s.error().message);
      });
  if (pid) eng_.scheduler().kill(pid, runtime::exit_reason::killed, "run suspended");
}

void durable_runs::ended(const std::shared_ptr<live_run>& r, const runtime::exit_info& e) {
  live_run::ending why;
  bool stopping;
  {
    std::lock_guard lock(mu_);
    why = r->why;
    stopping = stopping_;
    auto it = live_.find(r->rec.id);
    if (it != live_.end() && it->second == r) live_.erase(it);
  }
  // Suspended or terminated: that wrote the state. Shutdown: stays unfinished.
  if (why != live_run::ending::none || stopping || e.reason == runtime::exit_reason::shutdown)
    return;
  run_state state =
      e.reason == runtime::exit_reason::normal ? run_state::completed : run_state::failed;
  if (state == run_state::failed)
    runtime::logger().warn("durable run {} failed: {}: {}", r->rec.id,
                           runtime::reason_name(e.reason), e.err.message);
  std::string detail = json::serialize(proto::exit_json(e));
  eng_.storage().set_state(r->rec.id, state, detail,
                           [this, id = r->rec.id, state, detail](runtime::status s) {
                             if (!s)
                               return runtime::logger().error(
                                   "durable run {}: state not written: {}", id, s.error().message);
                             run_ended(id, state, detail);
                           });
}

runtime::status durable_runs::rebuild(const run_record& rec, runtime::chunk_ptr& code,
                                      runtime::spawn_options& so, int depth) {
  boost::system::error_code ec;
  json::value spawn = json::parse(rec.spawn, ec);
  if (ec || !spawn.is_object())
    return fail(error_kind::invalid, "its stored spawn request does not parse");
  const json::object& p = spawn.get_object();
  if (p.contains("parent")) return rebuild_child(rec, p, code, so, depth);
  if (const json::value* wf = p.if_contains("workflow"); wf && wf->is_string()) {
    std::string name(wf->get_string());
    const workflow_config* w = nullptr;
    for (const auto& c : cfg_.workflows)
      if (c.name == name) w = &c;
    if (!w) return fail(error_kind::not_found, "workflow '" + name + "' is no longer configured");
    if (!w->durable)
      return fail(error_kind::invalid, "workflow '" + name + "' is no longer durable");
    workflow_spawn_options(eng_, *w, so);
    if (const json::value* a = p.if_contains("args"); a && a->is_array()) {  // continued as new
      so.args.clear();
      for (const auto& v : a->get_array()) so.args.push_back(proto::from_json(v));
    }
    code = runtime::compile_file(w->script);  // (not the cache: see below)
    if (code->compile_error) return *code->compile_error;
    return runtime::done{};
  }
  const json::object* peer_obj = p.if_contains("peer") ? p.at("peer").if_object() : nullptr;
  const json::value* owner = p.if_contains("owner");
  if (!peer_obj || !owner || !owner->is_string() || !peer_obj->contains("uid"))
    return fail(error_kind::invalid, "its stored spawn request names no peer");
  peer as{static_cast<uid_t>(peer_obj->at("uid").to_number<std::int64_t>()),
          static_cast<gid_t>(
              peer_obj->contains("gid") ? peer_obj->at("gid").to_number<std::int64_t>() : -1)};
  actor who{std::string(owner->get_string()), false, as.uid};
  if (auto ok = spawn_options_from(cfg_, eng_, p, who, as, so); !ok) return ok.error();
  if (const json::value* src = p.if_contains("source"); src && src->is_string()) {
    const json::value* name = p.if_contains("name");
    code = runtime::compile(src->get_string(), name && name->is_string()
                                                   ? std::string_view(name->get_string())
                                                   : std::string_view("submitted"));
  } else if (const json::value* script = p.if_contains("script"); script && script->is_string()) {
    auto found = find_script(cfg_, std::string(script->get_string()));
    if (!found) return found.error();
    so.ctx.script_root = found->root;
    // Read now, not from the cache, which trusts a file it checked within the
    // last second: a resume usually follows a fix of that very file.
    code = runtime::compile_file(found->path);
  } else {
    return fail(error_kind::invalid, "its stored spawn request has no source or script");
  }
  if (code->compile_error) return *code->compile_error;
  return runtime::done{};
}

runtime::result<run_record> durable_runs::record(const std::string& run) {
  auto found = eng_.storage().run(run);
  if (!found && found.error().kind == error_kind::not_found)
    return fail(error_kind::not_found, "no durable run '" + run + "'");
  return found;
}

runtime::status durable_runs::write_state(const std::string& run, run_state state,
                                          std::string detail) {
  return written([&](dispatcher::journal_backend::written_fn done) {
    eng_.storage().set_state(run, state, std::move(detail), std::move(done));
  });
}

std::size_t durable_runs::resume_unfinished() {
  auto runs = eng_.storage().runs(true);
  if (!runs) {
    runtime::logger().error("durable runs not resumed: {}", runs.error().message);
    return 0;
  }
  std::size_t started = 0;
  for (const run_record& rec : *runs) {
    if (rec.state == run_state::suspended) continue;  // waits for `resume`
    if (relaunch(rec)) ++started;
  }
  if (!runs->empty())
    runtime::logger().info("durable runs: {} resumed of {} unfinished", started, runs->size());
  return started;
}

runtime::result<started_run> durable_runs::relaunch(const run_record& rec, bool claimed) {
  // (Started meanwhile by the run it continues, replayed just before it.)
  if (runtime::pid pid = live_pid(rec.id)) return started_run{rec.id, pid};
  if (!claimed) {
    if (auto ok = take(rec.id); !ok) return ok.error();  // another node runs it
  }
  auto past = eng_.storage().history(rec.id);
  auto inbox = past ? eng_.storage().messages(rec.id) : past.error();
  runtime::chunk_ptr code;
  runtime::spawn_options so;
  runtime::status ok = !past    ? runtime::status(past.error())
                       : !inbox ? runtime::status(inbox.error())
                                : rebuild(rec, code, so);
  bool readable = past && inbox;
  if (claimed && !readable && database_not_ready(ok.error()))
    return ok.error();  // the database is back soon: adopt() tries again
  runtime::result<started_run> s =
      ok ? launch(rec, std::move(*past), std::move(*inbox), code, std::move(so)) : ok.error();
  if (s) return s;
  std::string why = (readable ? "cannot start it again: " : "") + s.error().message;
  runtime::logger().error("durable run {} suspended: {}", rec.id, why);
  (void)write_state(rec.id, run_state::suspended, report(readable ? "start" : "journal", why));
  return fail(s.error().kind, "run " + rec.id + " suspended: " + why);
}

runtime::result<started_run> durable_runs::resume(const std::string& run) {
  auto rec = record(run);
  if (!rec) return rec.error();
  {
    std::lock_guard lock(mu_);
    if (live_.count(run)) return fail(error_kind::invalid, "run " + run + " is running");
  }
  if (dispatcher::finished(rec->state))
    return fail(error_kind::invalid, "run " + run + " is " +
                                         std::string(dispatcher::run_state_name(rec->state)) +
                                         ": only a suspended or stopped run can be resumed");
  if (auto ok = take(run); !ok) return ok.error();
  auto past = eng_.storage().history(run);
  if (!past) return past.error();
  auto inbox = eng_.storage().messages(run);
  if (!inbox) return inbox.error();
  runtime::chunk_ptr code;
  runtime::spawn_options so;
  if (auto ok = rebuild(*rec, code, so); !ok)
    return fail(ok.error().kind, "run " + run + " cannot start again: " + ok.error().message);
  if (auto ok = write_state(run, run_state::running, ""); !ok) return ok.error();
  runtime::logger().info("durable run {} resumed by replay of {} steps", run, past->size());
  return launch(*rec, std::move(*past), std::move(*inbox), code, std::move(so));
}

runtime::status durable_runs::terminate(const std::string& run) {
  auto rec = record(run);
  if (!rec) return rec.error();
  if (dispatcher::finished(rec->state))
    return fail(error_kind::invalid, "run " + run + " is already " +
                                         std::string(dispatcher::run_state_name(rec->state)));
  if (auto ok = take(run); !ok) return ok;
  runtime::pid pid;
  {
    std::lock_guard lock(mu_);
    if (auto it = live_.find(run); it != live_.end()) {
      it->second->why = live_run::ending::terminated;
      pid = it->second->pid;
    }
  }
  if (auto ok = write_state(run, run_state::terminated, report("terminated", "by hand")); !ok)
    return ok;
  run_ended(run, run_state::terminated, report("terminated", "by hand"));
  if (pid) eng_.scheduler().kill(pid, runtime::exit_reason::killed, "run terminated");
  runtime::logger().info("durable run {} terminated", run);
  return runtime::done{};
}

runtime::result<std::string> durable_runs::owner_of(const std::string& run) {
  auto rec = record(run);
  if (!rec) return rec.error();
  return rec->owner;
}

runtime::result<json::array> durable_runs::list(const actor& viewer) {
  auto runs = eng_.storage().runs(false);
  if (!runs) return runs.error();
  json::array out;
  for (const run_record& rec : *runs) {
    json::object o{{"run", rec.id},
                   {"workflow", rec.workflow},
                   {"owner", rec.owner},
                   {"script", rec.script},
                   {"state", dispatcher::run_state_name(rec.state)},
                   {"steps", rec.steps},
                   {"created", rec.created},
                   {"updated", rec.updated}};
    if (rec.node) o["node"] = rec.node;  // in a cluster: the node that owns it
    runtime::pid pid;
    {
      std::lock_guard lock(mu_);
      if (auto it = live_.find(rec.id); it != live_.end()) pid = it->second->pid;
    }
    if (pid) {
      o["pid"] = pid.to_string();
      if (runtime::process* proc = eng_.scheduler().find(pid)) {
        std::string_view on = proc->waiting_on();
        if (on == "message") o["state"] = "waiting";
        if (on == "clock.sleep") o["state"] = "sleeping";
        proc->release_ref();
      }
    }
    bool readable = viewer.privileged || viewer.owner == rec.owner;
    if (!rec.detail.empty() && readable) o["detail"] = detail_json(rec.detail);
    out.push_back(std::move(o));
  }
  return out;
}

runtime::result<json::object> durable_runs::history(const std::string& run) {
  auto rec = record(run);
  if (!rec) return rec.error();
  auto past = eng_.storage().history(run);
  if (!past) return past.error();
  json::array steps;
  for (const journal_entry& e : *past) {
    json::object s{{"step", e.step},
                   {"command", runtime::command_name(e.command)},
                   {"args", decoded_json(e.args)},
                   {"state", e.state == dispatcher::step_state::done ? "done" : "started"},
                   {"failed", e.failed},
                   {"result", decoded_json(e.result)},
                   {"at", e.at}};
    steps.push_back(std::move(s));
  }
  return json::object{
      {"run", run}, {"state", dispatcher::run_state_name(rec->state)}, {"steps", std::move(steps)}};
}

void durable_runs::stop_all() {
  std::vector<runtime::pid> pids;
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    for (auto& [id, r] : live_)
      if (r->pid) pids.push_back(r->pid);
  }
  drop_waiters();
  for (runtime::pid pid : pids)
    eng_.scheduler().kill(pid, runtime::exit_reason::shutdown, "the daemon is shutting down");
}

bool durable_runs::has_live(const std::string& workflow) {
  std::lock_guard lock(mu_);
  for (const auto& [id, r] : live_)
    if (r->rec.workflow == workflow && r->pid) return true;
  return false;
}

runtime::pid durable_runs::live_pid(const std::string& run) {
  std::lock_guard lock(mu_);
  auto it = live_.find(run);
  return it == live_.end() ? runtime::pid{} : it->second->pid;
}

std::vector<runtime::pid> durable_runs::stop_workflow(const std::string& name) {
  std::vector<runtime::pid> pids;
  {
    std::lock_guard lock(mu_);
    for (auto& [id, r] : live_) {
      if (r->rec.workflow != name || r->why != live_run::ending::none) continue;
      r->why = live_run::ending::stopped;
      if (r->pid) pids.push_back(r->pid);
    }
  }
  for (runtime::pid pid : pids)
    eng_.scheduler().kill(pid, runtime::exit_reason::killed, "workflow stopped");
  return pids;
}

void durable_runs::continue_as_new(const std::shared_ptr<live_run>& r, std::string next,
                                   runtime::value args, runtime::completion done) {
  // The args arrive as message-codec encodings; a new run's args are values
  // (kept in its spawn request as JSON).
  runtime::value::array values;
  json::array args_json;
  if (const auto* list = args.get<runtime::value::array>()) {
    for (std::size_t i = 0; i < list->size(); ++i) {
      const std::string* bytes = (*list)[i].get<std::string>();
      std::optional<runtime::value> v = bytes ? runtime::decode_value(*bytes) : std::nullopt;
      if (!v)
        return done.fail({error_kind::invalid,
                          "workflow.continue_as_new: argument " + std::to_string(i + 1) +
                              " cannot start a run (a shared or mixed table, or a pointer)",
                          false,
                          {}});
      args_json.push_back(proto::to_json(*v));
      values.push_back(std::move(*v));
    }
  }
  boost::system::error_code ec;
  json::value spawn = json::parse(r->rec.spawn, ec);
  if (ec || !spawn.is_object()) spawn = json::object{};
  spawn.as_object()["args"] = std::move(args_json);
  spawn.as_object()["continued_from"] = r->rec.id;
  run_record rec = r->rec;
  rec.id = std::move(next);
  rec.args.clear();
  runtime::encode_value(runtime::value(values), rec.args);
  rec.state = run_state::running;
  rec.detail.clear();
  rec.steps = 0;
  rec.created = rec.updated = unix_now();
  rec.spawn = json::serialize(spawn);
  auto d = std::make_shared<runtime::completion>(std::move(done));
  eng_.storage().create_run(rec, [this, r, rec, d](runtime::status s) {
    // `invalid`: the id is taken, by this very run's continuation before a
    // crash (the id comes from this run and step): it is there already.
    if (!s && s.error().kind != error_kind::invalid) return d->fail(s.error());
    // The rest on the io thread: rebuilding reads the config.
    boost::asio::post(io_, [this, r, rec, d] { start_next(r, rec, std::move(*d)); });
  });
}

void durable_runs::start_next(const std::shared_ptr<live_run>& r, const run_record& next,
                              runtime::completion done) {
  runtime::pid pid;
  {
    std::lock_guard lock(mu_);
    if (r->why != live_run::ending::none || stopping_) return;  // (done drops: canceled)
    r->why = live_run::ending::continued;
    pid = r->pid;
  }
  // Its messages go on to the next run: those it did not receive, recorded
  // in the next run's inbox before this run is completed (a replay after a
  // crash here records the same ones again, refused as already there), and
  // its names freed for the next run to register; later sends are refused.
  std::vector<dispatcher::inbox_message> carried = r->sink->close_inbox();
  if (pid) eng_.scheduler().unregister_name(pid);
  for (std::size_t i = 0; i < carried.size(); ++i) {
    dispatcher::inbox_message m = std::move(carried[i]);
    m.run = next.id;
    m.seq = static_cast<std::int64_t>(i);
    auto put = written([&](dispatcher::journal_backend::written_fn w) {
      eng_.storage().append_message(std::move(m), std::move(w));
    });
    if (!put && put.error().kind != error_kind::invalid)
      runtime::logger().error("durable run {}: message {} not carried to run {}: {}", r->rec.id, i,
                              next.id, put.error().message);
  }
  std::string continued = json::serialize(json::object{{"continued_as", next.id}});
  auto ok = write_state(r->rec.id, run_state::completed, continued);
  if (!ok)
    runtime::logger().error("durable run {}: state not written: {}", r->rec.id, ok.error().message);
  else
    run_ended(r->rec.id, run_state::completed, continued);
  auto rec = record(next.id);  // as stored (a replay finds the first one)
  if (rec && (dispatcher::finished(rec->state) || rec->state == run_state::suspended)) {
    // A replay reached this point again after the next run had gone on.
    if (pid) eng_.scheduler().kill(pid, runtime::exit_reason::killed, "continued as new");
    return;
  }
  auto started = rec ? relaunch(*rec) : runtime::result<started_run>(rec.error());
  if (started)
    runtime::logger().info("durable run {} continued as new: run {} (pid {})", r->rec.id, next.id,
                           started->pid.to_string());
  else
    runtime::logger().error("durable run {} continued as new, but run {} did not start: {}",
                            r->rec.id, next.id, started.error().message);
  if (pid) eng_.scheduler().kill(pid, runtime::exit_reason::killed, "continued as new");
  (void)done;  // dropped: the process is being killed
}

}  // namespace luad::server
