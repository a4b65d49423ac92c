// Children of durable runs (durable_runs.hpp, "Children"): workflow.start
// makes a durable child run, workflow.wait waits for a run to end.
//
// DESIGN. A child is an ordinary durable run whose stored spawn request names
// its parent and its script ({"parent", "script_path"}): it is listed,
// resumed after a restart, suspended and terminated as every run is, and a
// resume rebuilds its spawn from its parent's (owner, limits, permissions:
// what the parent has, a child has) with its own code and args. Its id comes
// from the parent's sink (the parent's run and step), so a start that a
// replay reaches again finds the child recorded already and does not start
// it twice. A wait answers from the runs table when the run has ended, or
// when it ends: the end is answered only after its state is written, so the
// parent records an end that a restart will find again. A waiter is
// registered before the table is read, so an end in between is not missed
// (both may answer; the first one does).
#include <spdlog/spdlog.h>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "proto/json_rpc.hpp"
#include "runtime/logging.hpp"
#include "runtime/message_codec.hpp"
#include "runtime/scheduler.hpp"
#include "server/durable_runs.hpp"
#include "server/durable_runs_parts.hpp"

namespace luad::server {

namespace json = boost::json;
using dispatcher::run_record;
using dispatcher::run_state;
using runtime::error;
using runtime::error_kind;
using runtime::value;
using namespace durable_runs_parts;

namespace {

// How deep children may nest: a resume rebuilds a child from its parents.
constexpr std::int64_t k_max_depth = 64;

// How many runs a wait follows through continue_as_new before it gives up.
constexpr int k_max_continuations = 10000;

// The JSON object text `detail` parsed (an empty object when it is not one).
json::object object_of(const std::string& detail) {
  boost::system::error_code ec;
  json::value v = json::parse(detail, ec);
  return !ec && v.is_object() ? std::move(v.get_object()) : json::object{};
}

// Field `key` of `o` when it is a string, else "".
std::string text_field(const json::object& o, std::string_view key) {
  const json::value* f = o.if_contains(key);
  return f && f->is_string() ? std::string(f->get_string()) : std::string();
}

std::string text_field(const std::string& detail, std::string_view key) {
  return text_field(object_of(detail), key);
}

// What a wait for run `run`, ended in `state` with `detail`, answers: the
// array of its results, or its error.
runtime::outcome end_of(const std::string& run, run_state state, const std::string& detail) {
  json::object o = object_of(detail);
  if (state == run_state::completed) {
    value::array results;
    if (const json::value* r = o.if_contains("results"); r && r->is_array())
      for (const json::value& v : r->get_array()) results.push_back(proto::from_json(v));
    return runtime::outcome::success(std::move(results));
  }
  if (state == run_state::terminated)
    return runtime::outcome::failure(
        error{error_kind::canceled, "run " + run + " was terminated", false, {}});
  auto k = runtime::kind_from_name(text_field(o, "kind"));
  std::string message = text_field(o, "message");
  return runtime::outcome::failure(
      error{k ? *k : error_kind::runtime,
            "run " + run + " failed: " + (message.empty() ? detail : message),
            false,
            {}});
}

}  // namespace

/// A process waiting (workflow.wait) for a run to end; answered once.
struct durable_runs::waiter {
  waiter(runtime::completion d, boost::asio::io_context& io) : done(std::move(d)), timer(io) {}

  /// Completes `done` with `o` unless it was answered; true if this did.
  bool answer(runtime::outcome o) {
    {
      std::lock_guard lock(mu);
      if (answered) return false;
      answered = true;
    }
    if (o.err) {
      done.fail(std::move(*o.err));
    } else {
      done.succeed(std::move(o.val));
    }
    return true;
  }
  bool gone() {
    std::lock_guard lock(mu);
    return answered || done.abandoned();
  }

  std::mutex mu;
  bool answered = false;  // guarded by mu
  runtime::completion done;
  boost::asio::steady_timer timer;  // the io thread's (armed for a wait with a timeout)
};

void durable_runs::start_child(const run_record& parent, std::string child, value args,
                               runtime::completion done) {
  // args: {kind = "start", script = PATH, args = [encodings]}.
  const value* script = args.find("script");
  const std::string* path = script ? script->get<std::string>() : nullptr;
  const value* list = args.find("args");
  const auto* encodings = list ? list->get<value::array>() : nullptr;
  if (!path || !encodings)
    return done.fail(error{error_kind::invalid, "workflow.start: no script or args", false, {}});
  value::array values;
  json::array values_json;
  for (std::size_t i = 0; i < encodings->size(); ++i) {
    const std::string* bytes = (*encodings)[i].get<std::string>();
    std::optional<value> v = bytes ? runtime::decode_value(*bytes) : std::nullopt;
    if (!v)
      return done.fail(error{error_kind::invalid,
                             "workflow.start: argument " + std::to_string(i + 1) +
                                 " cannot start a run (a shared or mixed table, or a pointer)",
                             false,
                             {}});
    values.push_back(std::move(*v));
  }
  json::object parent_spawn = object_of(parent.spawn);
  const json::value* above = parent_spawn.if_contains("depth");
  std::int64_t depth = (above && above->is_int64() ? above->get_int64() : 0) + 1;
  if (depth > k_max_depth)
    return done.fail(
        error{error_kind::limit,
              "workflow.start: children nested more than " + std::to_string(k_max_depth) + " deep",
              false,
              {}});
  runtime::chunk_ptr code = eng_.scheduler().code().get(*path);
  if (code->compile_error) return done.fail(*code->compile_error);
  run_record rec = fresh_record(parent.owner, *path, *code, values);
  rec.id = std::move(child);
  rec.spawn = json::serialize(
      json::object{{"parent", parent.id}, {"script_path", json::string(*path)}, {"depth", depth}});
  auto d = std::make_shared<runtime::completion>(std::move(done));
  eng_.storage().create_run(rec, [this, rec, d](runtime::status s) {
    // `invalid`: the id is taken, by this very start before a crash (the id
    // comes from the parent's run and step): the child is there already.
    bool again = !s && s.error().kind == error_kind::invalid;
    if (!s && !again) return d->fail(s.error());
    // The rest on the io thread: rebuilding reads the config.
    boost::asio::post(io_, [this, rec, d, again] {
      std::optional<run_record> now = rec;
      if (again) {
        auto stored = record(rec.id);
        if (!stored) return d->fail(stored.error());
        now = std::move(*stored);
      }
      bool runnable = !dispatcher::finished(now->state) && now->state != run_state::suspended;
      if (runnable && !live_pid(now->id)) {
        auto started = relaunch(*now);  // (a failure suspends it, with a report)
        if (!started) return d->fail(started.error());
        runtime::logger().info("durable run {}: child run {} started (pid {})",
                               text_field(now->spawn, "parent"), now->id, started->pid.to_string());
      }
      d->succeed(value(now->id));
    });
  });
}

void durable_runs::wait_run(std::string owner, std::string run, double timeout,
                            runtime::completion done) {
  auto w = std::make_shared<waiter>(std::move(done), io_);
  boost::asio::post(io_, [this, owner = std::move(owner), run = std::move(run), timeout, w] {
    // Registered first: an end written while the table is read answers it.
    {
      std::lock_guard lock(mu_);
      auto& list = waiters_[run];
      std::erase_if(list, [](const std::shared_ptr<waiter>& o) { return o->gone(); });
      list.push_back(w);
    }
    std::string id = run;
    for (int hops = 0; hops < k_max_continuations; ++hops) {
      auto rec = record(id);
      if (!rec) return (void)w->answer(runtime::outcome::failure(rec.error()));
      if (rec->owner != owner)
        return (void)w->answer(runtime::outcome::failure(
            error{error_kind::permission_denied,
                  "workflow.wait: run " + id + " belongs to another owner",
                  false,
                  {}}));
      if (!dispatcher::finished(rec->state)) break;
      std::string next = text_field(rec->detail, "continued_as");
      if (next.empty()) return (void)w->answer(end_of(id, rec->state, rec->detail));
      std::lock_guard lock(mu_);  // follow the chain: wait for the run it continued as
      waiters_[next].push_back(w);
      id = std::move(next);
    }
    if (timeout <= 0) return;
    w->timer.expires_after(std::chrono::duration_cast<std::chrono::steady_clock::duration>(
        std::chrono::duration<double>(timeout)));
    w->timer.async_wait([w, run](boost::system::error_code ec) {
      if (ec) return;
      w->answer(runtime::outcome::failure(error{
          error_kind::timeout, "workflow.wait: run " + run + " did not end in time", true, {}}));
    });
  });
}

void durable_runs::run_ended(const std::string& run, run_state state, const std::string& detail) {
  if (cluster_) cluster_->run_ended(run, text_field(detail, "continued_as"));  // names, mail
  answer_waiters(run, state, detail);
}

std::vector<std::string> durable_runs::waited_elsewhere() {
  std::lock_guard lock(mu_);
  std::vector<std::string> out;
  for (auto it = waiters_.begin(); it != waiters_.end();) {
    std::erase_if(it->second, [](const std::shared_ptr<waiter>& w) { return w->gone(); });
    if (it->second.empty()) {
      it = waiters_.erase(it);
      continue;
    }
    if (!live_.count(it->first)) out.push_back(it->first);
    ++it;
  }
  return out;
}

void durable_runs::ended_elsewhere(const std::vector<run_record>& ended) {
  for (const run_record& r : ended) answer_waiters(r.id, r.state, r.detail);
}

void durable_runs::answer_waiters(const std::string& run, run_state state,
                                  const std::string& detail) {
  std::vector<std::shared_ptr<waiter>> list;
  std::string next = text_field(detail, "continued_as");
  {
    std::lock_guard lock(mu_);
    auto it = waiters_.find(run);
    if (it == waiters_.end()) return;
    list = std::move(it->second);
    waiters_.erase(it);
    if (!next.empty()) {  // they wait for the run it continued as
      auto& moved = waiters_[next];
      for (auto& w : list)
        if (!w->gone()) moved.push_back(std::move(w));
      return;
    }
  }
  for (const auto& w : list) {
    // (The timer is the io thread's; canceling one never armed does nothing.)
    if (w->answer(end_of(run, state, detail))) boost::asio::post(io_, [w] { w->timer.cancel(); });
  }
}

void durable_runs::drop_waiters() {
  std::unordered_map<std::string, std::vector<std::shared_ptr<waiter>>> all;
  {
    std::lock_guard lock(mu_);
    all.swap(waiters_);
  }
  for (auto& [run, list] : all)
    for (const auto& w : list) boost::asio::post(io_, [w] { w->timer.cancel(); });
}

runtime::status durable_runs::rebuild_child(const run_record& rec, const json::object& spawn,
                                            runtime::chunk_ptr& code, runtime::spawn_options& so,
                                            int depth) {
  const json::value* parent = spawn.if_contains("parent");
  const json::value* path = spawn.if_contains("script_path");
  if (!parent || !parent->is_string() || !path || !path->is_string())
    return runtime::fail(error_kind::invalid, "its stored spawn request names no parent script");
  if (depth > k_max_depth)
    return runtime::fail(error_kind::invalid, "children nested more than 64 deep");
  auto up = record(std::string(parent->get_string()));
  if (!up) return up.error();
  // What the parent has, the child has; then its own code and args.
  runtime::chunk_ptr parent_code;
  if (auto ok = rebuild(*up, parent_code, so, depth + 1); !ok) return ok;
  std::optional<value> args = runtime::decode_value(rec.args);
  const auto* list = args ? args->get<value::array>() : nullptr;
  if (!list) return runtime::fail(error_kind::invalid, "its stored args do not decode");
  so.args = *list;
  code = runtime::compile_file(std::string(path->get_string()));
  if (code->compile_error) return *code->compile_error;
  return runtime::done{};
}

}  // namespace luad::server
