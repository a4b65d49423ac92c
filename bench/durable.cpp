// The durable-run benchmark: Lua workflows run through dispatcher::durable_sink
// on a real engine and journal, against the same script run plainly, and the
// replay of a long journal.
//
// The workflow (1,000 runs at once, 20 steps each by default): each run
// advances its own progress counter in the store, one `store.incr` per step,
// as a job that records each stage it completes before starting the next. Not
// durable, every incr is a group-committed store write; durable, every incr is
// that write fused with its journal entry (apply_and_append), one transaction.
// Runs are created (journal_backend::create_run) before the clock starts.
// Replay: one run takes 10,000 `workflow.now()` steps live; then the same
// script is run with its history, timed from spawn to exit: every step is
// answered from the journal, so it must return the same timestamps.
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>  // (and POSIX mkdtemp)
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "bench/benchmarks.hpp"
#include "dispatcher/durable.hpp"
#include "runtime/code.hpp"
#include "server/engine.hpp"

namespace luad::bench {

namespace {

namespace fs = std::filesystem;
using dispatcher::durable_sink;
using dispatcher::journal_entry;
using runtime::value;

constexpr const char* steps_script =
    "local store = require('store')\n"
    "local key, steps = ...\n"
    "local n\n"
    "for _ = 1, steps do n = assert(store.incr(key, 1)) end\n"
    "return n\n";

constexpr const char* replay_script =
    "local now = require('workflow').now\n"
    "local steps = ...\n"
    "local sum, last = 0, 0\n"
    "for _ = 1, steps do last = now(); sum = sum + last end\n"
    "return steps, sum, last\n";

[[noreturn]] void die(const std::string& why) {
  note("durable: " + why);
  std::fflush(stderr);
  std::_Exit(1);  // (from any thread, with the engine's threads still running)
}

// A fresh folder from mkdtemp, removed with everything in it when the object goes.
class temp_folder {
 public:
  temp_folder() {
    std::string tmpl = (fs::temp_directory_path() / "luad_bench_durable_XXXXXX").string();
    if (!::mkdtemp(tmpl.data())) die("mkdtemp failed");
    path_ = tmpl;
  }
  ~temp_folder() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  temp_folder(const temp_folder&) = delete;
  temp_folder& operator=(const temp_folder&) = delete;
  std::string path() const { return path_.string(); }

 private:
  fs::path path_;
};

// An engine with its store (and journal) in a fresh folder, which goes after it.
struct journaled {
  explicit journaled(const options& opts)
      : eng(server::engine_options{
            runtime::scheduler_options::with_workers(opts.workers), dir.path(), {}}) {}
  temp_folder dir;  // (declared first: destroyed after the engine)
  server::engine eng;
};

// Creates runs `ids` in the journal and waits until all are durable.
void create_runs(server::engine& eng, const std::vector<std::string>& ids) {
  std::mutex mu;
  std::condition_variable cv;
  std::size_t left = ids.size(), failed = 0;
  for (const std::string& id : ids) {
    dispatcher::run_record r;
    r.id = id;
    r.owner = "bench";
    r.script = "bench/durable.cpp";
    eng.storage().create_run(std::move(r), [&](const runtime::status& st) {
      std::lock_guard lock(mu);
      if (!st) ++failed;
      if (--left == 0) cv.notify_all();
    });
  }
  std::unique_lock lock(mu);
  cv.wait(lock, [&] { return left == 0; });
  if (failed) die(std::to_string(failed) + " create_run calls failed");
}

// The sink of durable run `id`. A stop (divergence, a journal write that
// failed) leaves its process waiting forever, and the figures would be
// meaningless: the benchmark ends there, loudly.
std::shared_ptr<durable_sink> sink_for(server::engine& eng, const std::string& id,
                                       std::vector<journal_entry> past = {}) {
  return std::make_shared<durable_sink>(
      id, "bench", std::move(past), eng.commands(), eng.storage(),
      [id](const std::string& report) { die("run " + id + " stopped: " + report); });
}

/// Runs `runs` copies of steps_script (`steps` each) at once, durable or not;
/// returns steps/s from the first spawn to the last exit.
double steps_per_second(server::engine& eng, const runtime::chunk_ptr& code, const char* prefix,
                        std::size_t runs, std::size_t steps, bool durable) {
  std::vector<std::string> ids;
  for (std::size_t r = 0; r < runs; ++r) ids.push_back(prefix + std::to_string(r));
  if (durable) create_runs(eng, ids);
  exit_latch latch(runs);
  std::atomic<std::size_t> wrong{0};
  const value expected(static_cast<std::int64_t>(steps));
  auto t0 = wall_clock::now();
  for (const std::string& id : ids) {
    runtime::spawn_options so;
    so.args = {value(id), expected};
    so.ctx.permissions = {"store:bench"};
    so.on_exit = [&wrong, &expected, counted = latch.callback()](const runtime::exit_info& e) {
      if (e.reason == runtime::exit_reason::normal && e.results != std::vector<value>{expected})
        wrong.fetch_add(1);
      counted(e);
    };
    if (durable) so.commands = sink_for(eng, id);
    if (!eng.scheduler().spawn(code, std::move(so))) die("spawn refused");
  }
  latch.wait();
  double wall = seconds_since(t0);
  if (latch.abnormal() || wrong.load())
    die(std::to_string(latch.abnormal()) + " runs ended abnormally, " +
        std::to_string(wrong.load()) + " returned a wrong count");
  return static_cast<double>(runs * steps) / wall;
}

// One run of `code` with `so`; its exit, or the benchmark ends.
runtime::exit_info run_one(server::engine& eng, const runtime::chunk_ptr& code,
                           runtime::spawn_options so) {
  std::mutex mu;
  std::condition_variable cv;
  std::optional<runtime::exit_info> out;
  so.on_exit = [&](const runtime::exit_info& e) {
    std::lock_guard lock(mu);
    out = e;
    cv.notify_all();
  };
  if (!eng.scheduler().spawn(code, std::move(so))) die("spawn refused");
  std::unique_lock lock(mu);
  cv.wait(lock, [&] { return out.has_value(); });
  if (out->reason != runtime::exit_reason::normal) die("a run failed: " + out->err.message);
  return *out;
}

// Steps/s with and without the journal, each on its own engine and folder.
void bench_steps(const options& opts) {
  runtime::chunk_ptr code = compile_or_die(steps_script, "durable_steps.lua");
  const std::size_t runs = opts.durable_runs, steps = opts.durable_steps;
  double rate[2] = {0, 0};
  for (bool durable : {false, true}) {
    journaled j(opts);
    steps_per_second(j.eng, code, "warm-", 100, steps, durable);
    auto commits0 = j.eng.storage().commits();
    auto writes0 = j.eng.storage().committed_writes();
    double cpu0 = cpu_seconds();
    rate[durable ? 1 : 0] = steps_per_second(j.eng, code, "run-", runs, steps, durable);
    double cpu_us = (cpu_seconds() - cpu0) * 1e6 / static_cast<double>(runs * steps);
    auto commits = j.eng.storage().commits() - commits0;
    auto writes = j.eng.storage().committed_writes() - writes0;
    // CPU per step (steadier than the rate on a busy machine) and the batch
    // size: small batches mean fsync-bound, large ones a busy writer thread.
    note(std::string(durable ? "durable" : "plain") + ": " + std::to_string(cpu_us) +
         " us CPU per step, " +
         std::to_string(commits ? static_cast<double>(writes) / static_cast<double>(commits) : 0) +
         " writes per commit");
  }
  std::string tag = std::to_string(runs) + "x" + std::to_string(steps);
  report("plain_steps_" + tag, rate[0], "steps/s");
  report("durable_steps_" + tag, rate[1], "steps/s");
  report("durable_ratio", rate[1] / rate[0], "x");
}

// A live run of `steps` journaled steps, then its replay from the journal.
void bench_replay(const options& opts) {
  runtime::chunk_ptr code = compile_or_die(replay_script, "durable_replay.lua");
  const std::size_t steps = opts.durable_replay;
  const std::string id = "replay";
  journaled j(opts);
  create_runs(j.eng, {id});
  auto spawn_opts = [&](std::vector<journal_entry> past, std::shared_ptr<durable_sink>& sink) {
    runtime::spawn_options so;
    so.args = {value(static_cast<std::int64_t>(steps))};
    sink = sink_for(j.eng, id, std::move(past));
    so.commands = sink;
    return so;
  };
  std::shared_ptr<durable_sink> sink;
  auto t0 = wall_clock::now();
  runtime::exit_info live = run_one(j.eng, code, spawn_opts({}, sink));
  note("replay: the live run took " + std::to_string(seconds_since(t0)) + " s (" +
       std::to_string(static_cast<double>(steps) / seconds_since(t0)) + " steps/s, one run)");

  t0 = wall_clock::now();
  auto past = j.eng.storage().history(id);
  if (!past) die("history: " + past.error().message);
  note("replay: history() read " + std::to_string(past->size()) + " entries in " +
       std::to_string(seconds_since(t0) * 1e3) + " ms");
  if (past->size() != steps) die("the journal holds " + std::to_string(past->size()) + " steps");

  runtime::spawn_options so = spawn_opts(std::move(*past), sink);
  t0 = wall_clock::now();
  runtime::exit_info again = run_one(j.eng, code, std::move(so));
  double ms = seconds_since(t0) * 1e3;
  if (again.results != live.results)
    die("the replayed run returned other results than the live one");
  if (sink->steps() != static_cast<std::int64_t>(steps) || sink->replaying())
    die("the replay answered " + std::to_string(sink->steps()) + " steps");
  auto after = j.eng.storage().history(id);
  if (!after || after->size() != steps) die("the replay wrote to the journal");
  report("replay_" + std::to_string(steps) + "_ms", ms, "ms");
}

}  // namespace

void bench_durable(const options& opts) {
  bench_steps(opts);
  bench_replay(opts);
}

}  // namespace luad::bench
