// The journal benchmark: journaled steps per second from many durable runs at
// once, each appending its next step only once the last is durable (as a run
// waits for its entry before it goes on), against dispatcher::storage as a
// journal_backend; then the same with every step a store write fused with its
// entry (apply_and_append). No Lua: this is the backend's own rate. With
// LUAD_BENCH_POSTGRES (bench/postgres.sh), the appends again on PostgreSQL,
// from 1, 2 and 3 daemons' backends at once on one database.
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "bench/benchmarks.hpp"
#include "dispatcher/postgres_store.hpp"
#include "dispatcher/storage.hpp"
#include "runtime/message_codec.hpp"

namespace luad::bench {

namespace {

namespace fs = std::filesystem;
using dispatcher::journal_entry;
using runtime::value;

std::string encoded(const value& v) {
  std::string out;
  runtime::encode_value(v, out);
  return out;
}

// Drives `runs` chains of `steps` appends each and waits for the last.
class chains {
 public:
  chains(dispatcher::storage& s, std::string prefix, std::size_t runs, std::size_t steps,
         bool fused)
      : s_(s), prefix_(std::move(prefix)), runs_(runs), steps_(steps), fused_(fused) {}

  /// Creates the runs (untimed), then times every chain to its end; steps/s.
  double run() {
    for (std::size_t r = 0; r < runs_; ++r) {
      dispatcher::run_record rec;
      rec.id = id(r);
      rec.owner = "bench";
      rec.script = "bench/journal.cpp";
      s_.create_run(std::move(rec), [this](const runtime::status& st) { count(st.ok()); });
    }
    wait(runs_);
    auto t0 = wall_clock::now();
    for (std::size_t r = 0; r < runs_; ++r) next(r, 0);
    wait(runs_ * (steps_ + 1));
    return static_cast<double>(runs_ * steps_) / seconds_since(t0);
  }
  std::size_t failures() const { return failures_.load(); }

 private:
  std::string id(std::size_t r) const { return prefix_ + std::to_string(r); }

  void next(std::size_t r, std::size_t step) {
    journal_entry e;
    e.run = id(r);
    e.step = static_cast<std::int64_t>(step);
    e.command = fused_ ? runtime::command_id::store_op : runtime::command_id::clock_sleep;
    e.args = sleep_args_;
    e.result = done_result_;
    auto then = [this, r, step](bool ok) {
      if (step + 1 < steps_)
        next(r, step + 1);  // (on the writer thread: queued for its next batch)
      count(ok);
    };
    if (!fused_) {
      s_.append(std::move(e), [then](const runtime::status& st) { then(st.ok()); });
      return;
    }
    value::map op{{"op", "set"},
                  {"ns", "bench"},
                  {"key", e.run + "/" + std::to_string(step)},
                  {"value", done_result_}};
    s_.apply_and_append(std::move(e), value(std::move(op)),
                        [then](runtime::outcome o) { then(!o.err); });
  }

  void count(bool ok) {
    if (!ok) failures_.fetch_add(1);
    std::lock_guard lock(mu_);
    if (++finished_ == target_) cv_.notify_all();  // (a wake-up per step would cost the writer)
  }
  void wait(std::size_t n) {
    std::unique_lock lock(mu_);
    target_ = n;
    cv_.wait(lock, [&] { return finished_ >= n; });
  }

  dispatcher::storage& s_;
  const std::string prefix_;
  const std::size_t runs_, steps_;
  const bool fused_;
  const std::string sleep_args_ = encoded(value(0.5));
  const std::string done_result_ = encoded(value(true));
  std::atomic<std::size_t> failures_{0};
  std::mutex mu_;
  std::condition_variable cv_;
  std::size_t finished_ = 0, target_ = 0;  // guarded by mu_
};

// The same steps on PostgreSQL (bench/postgres.sh gives the server): 1, 2
// and 3 daemons' backends, each a node of a cluster with its own runs, all
// appending at once to one database; the total rate beside SQLite's.
void bench_journal_postgres(const options& opts, const std::string& conninfo, double sqlite_rate) {
  std::string tag = size_tag(opts.journal_runs) + "x" + std::to_string(opts.journal_steps);
  double one = 0;
  for (std::size_t daemons = 1; daemons <= 3; ++daemons) {
    std::vector<std::unique_ptr<dispatcher::storage>> stores;
    std::vector<std::unique_ptr<chains>> work;
    for (std::size_t d = 0; d < daemons; ++d) {
      dispatcher::postgres_options po;
      po.conninfo = conninfo;
      stores.push_back(std::make_unique<dispatcher::storage>(
          std::make_unique<dispatcher::postgres_store>(std::move(po))));
      stores.back()->start();
      dispatcher::cluster_options co;
      co.node = static_cast<std::uint32_t>(d + 1);
      co.host = "bench";
      co.version = "bench";
      if (auto ok = stores.back()->cluster()->join(co); !ok) {
        note("journal on postgres: " + ok.error().message);
        return;
      }
      // The runs are split among the daemons: the same work, more writers.
      work.push_back(std::make_unique<chains>(
          *stores.back(), "pg" + std::to_string(daemons) + "-" + std::to_string(d) + "-",
          opts.journal_runs / daemons, opts.journal_steps, false));
    }
    std::vector<double> rates(daemons);
    std::vector<std::thread> threads;
    auto t0 = wall_clock::now();
    for (std::size_t d = 0; d < daemons; ++d)
      threads.emplace_back([&, d] { rates[d] = work[d]->run(); });
    for (auto& t : threads) t.join();
    double total =
        static_cast<double>((opts.journal_runs / daemons) * daemons * opts.journal_steps) /
        seconds_since(t0);  // (includes creating the runs: a small part)
    std::size_t failed = 0;
    for (auto& w : work) failed += w->failures();
    if (failed) note(std::to_string(failed) + " journal writes failed on postgres");
    report("journal_pg_appends_" + std::to_string(daemons) + "d_" + tag, total, "steps/s");
    if (daemons == 1) {
      one = total;
      report("journal_pg_vs_sqlite", sqlite_rate > 0 ? total / sqlite_rate : 0, "x");
    } else {
      report("journal_pg_" + std::to_string(daemons) + "d_vs_1d", one > 0 ? total / one : 0, "x");
    }
    for (auto& st : stores) {
      st->cluster()->leave();
      st->stop();
    }
  }
}

}  // namespace

void bench_journal(const options& opts) {
  fs::path dir = fs::temp_directory_path() / ("luad_bench_journal_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  dispatcher::storage s(dir.string());
  s.start();
  // The chains outlive the writer thread (s.stop() below), which calls into them.
  chains warm(s, "warm-", 100, 10, false);
  warm.run();
  chains plain(s, "plain-", opts.journal_runs, opts.journal_steps, false);
  chains fused(s, "fused-", opts.journal_runs, opts.journal_steps, true);
  std::string tag = size_tag(opts.journal_runs) + "x" + std::to_string(opts.journal_steps);
  double plain_rate = 0;
  for (chains* c : {&plain, &fused}) {
    const char* kind = c == &plain ? "appends" : "fused";
    auto commits0 = s.commits();
    auto writes0 = s.committed_writes();
    double cpu0 = cpu_seconds();
    double rate = c->run();
    double cpu_us =
        (cpu_seconds() - cpu0) * 1e6 / static_cast<double>(opts.journal_runs * opts.journal_steps);
    if (c->failures() > 0) note(std::to_string(c->failures()) + " journal writes failed");
    // CPU per step (writer, kernel, the chains' callbacks): steadier than the
    // rate on a machine that something else keeps busy.
    note(std::string("journal_") + kind + ": " + std::to_string(cpu_us) + " us CPU per step");
    report(std::string("journal_") + kind + "_" + tag, rate, "steps/s");
    if (c == &plain) plain_rate = rate;
    auto commits = s.commits() - commits0;
    auto writes = s.committed_writes() - writes0;
    report(std::string("journal_") + kind + "_per_commit",
           commits ? static_cast<double>(writes) / static_cast<double>(commits) : 0, "writes");
  }
  s.stop();
  fs::remove_all(dir);
  if (const char* pg = std::getenv("LUAD_BENCH_POSTGRES"); pg && *pg)
    bench_journal_postgres(opts, pg, plain_rate);
}

}  // namespace luad::bench
