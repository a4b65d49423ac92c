// Durable runs of config workflows (durable_runs.hpp, "Runs of config
// workflows"): a new run of a workflow, its unfinished runs resumed, the
// latest schedule tick that ran, and its runs for the `workflows` listing.
#include <algorithm>
#include <string>
#include <vector>

#include "runtime/code.hpp"
#include "server/durable_runs.hpp"
#include "server/durable_runs_parts.hpp"
#include "server/spawn_request.hpp"

namespace luad::server {

namespace json = boost::json;
using dispatcher::run_record;
using dispatcher::run_state;
using namespace durable_runs_parts;

runtime::result<started_run> durable_runs::start_workflow(const workflow_config& w, double tick) {
  runtime::chunk_ptr code = runtime::compile_file(w.script);
  if (code->compile_error) return *code->compile_error;
  runtime::spawn_options so;
  workflow_spawn_options(eng_, w, so);
  run_record rec = fresh_record(so.ctx.owner, w.script, *code, so.args);
  rec.workflow = w.name;
  json::object spawn{{"workflow", w.name}};
  if (tick != 0) spawn["tick"] = tick;
  rec.spawn = json::serialize(spawn);
  if (cluster_) {
    // Every node has the same workflows: the run's id is the same on all of
    // them, so that only the first node's is recorded (a tick's run, or the
    // workflow's next run), and the others find it started.
    if (tick != 0) {
      rec.id = "t-" + w.name + "-" + std::to_string(static_cast<std::int64_t>(tick));
    } else {
      auto all = eng_.storage().runs(false);
      if (!all) return all.error();
      auto n = std::count_if(all->begin(), all->end(),
                             [&](const run_record& r) { return r.workflow == w.name; });
      rec.id = "w-" + w.name + "-" + std::to_string(n + 1);
    }
  }
  auto ok = written([&](dispatcher::journal_backend::written_fn done) {
    eng_.storage().create_run(rec, std::move(done));
  });
  if (!ok && cluster_ && ok.error().message.find("already exists") != std::string::npos)
    return started_run{rec.id, {}};  // another node recorded it first and runs it
  if (!ok) return ok.error();
  return launch(rec, {}, {}, code, std::move(so));
}

runtime::result<workflow_runs> durable_runs::resume_workflow(const workflow_config& w) {
  auto runs = eng_.storage().runs(true);
  if (!runs) return runs.error();
  workflow_runs out;
  for (const run_record& rec : *runs) {
    if (rec.workflow != w.name) continue;
    if (runtime::pid pid = live_pid(rec.id)) {
      out.live.push_back({rec.id, pid});
    } else if (rec.state == run_state::suspended) {
      out.suspended.push_back(rec.id);
    } else if (auto s = relaunch(rec)) {
      out.live.push_back(*s);
      ++out.resumed;
    } else if (cluster_ && s.error().message.find(" runs on node ") != std::string::npos) {
      out.elsewhere.push_back(rec.id);
    } else {
      out.suspended.push_back(rec.id);
    }
  }
  return out;
}

runtime::result<double> durable_runs::last_tick(const std::string& name) {
  auto runs = eng_.storage().runs(false);
  if (!runs) return runs.error();
  double last = 0;
  for (const run_record& rec : *runs)
    if (rec.workflow == name) last = std::max(last, tick_of(rec));
  return last;
}

json::array durable_runs::runs_of(const std::string& name) {
  json::array out;
  auto runs = eng_.storage().runs(false);
  if (!runs) return out;
  const run_record* last_finished = nullptr;
  auto add = [&](const run_record& rec) {
    json::object o{
        {"run", rec.id}, {"state", dispatcher::run_state_name(rec.state)}, {"steps", rec.steps}};
    if (double t = tick_of(rec)) o["tick"] = t;
    if (runtime::pid pid = live_pid(rec.id)) o["pid"] = pid.to_string();
    out.push_back(std::move(o));
  };
  for (const run_record& rec : *runs) {
    if (rec.workflow != name) continue;
    if (dispatcher::finished(rec.state))
      last_finished = &rec;
    else
      add(rec);
  }
  if (last_finished) add(*last_finished);
  return out;
}

}  // namespace luad::server
