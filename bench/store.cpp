// The store benchmark: acknowledged durable writes per second from many Lua
// processes at once (group commit), against the naive baseline in the same
// run: a plain SQLite loop on the same kind of file (WAL, synchronous = FULL)
// committing one transaction per write. With LUAD_BENCH_POSTGRES set to a
// connection string (bench/postgres.sh makes a server and sets it), the same
// writes go to PostgreSQL too, and their ratio to SQLite's is reported.
#include <sqlite3.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <memory>
#include <string>

#include "bench/benchmarks.hpp"
#include "runtime/code.hpp"
#include "server/engine.hpp"

namespace luad::bench {

namespace {

namespace fs = std::filesystem;
using runtime::value;

fs::path fresh_dir(const char* name) {
  fs::path d = fs::temp_directory_path() / (std::string(name) + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

bool exec(sqlite3* db, const char* sql) {
  return sqlite3_exec(db, sql, nullptr, nullptr, nullptr) == SQLITE_OK;
}

// One INSERT per transaction (autocommit), as a program without batching
// would do it; runs for about `seconds` and returns writes per second.
double naive_writes_per_second(const fs::path& dir, double seconds) {
  sqlite3* db = nullptr;
  if (sqlite3_open((dir / "naive.db").c_str(), &db) != SQLITE_OK) return 0;
  exec(db, "PRAGMA journal_mode = WAL");
  exec(db, "PRAGMA synchronous = FULL");
  exec(db,
       "CREATE TABLE kv (ns BLOB NOT NULL, key BLOB NOT NULL, value BLOB NOT NULL, expires REAL,"
       " PRIMARY KEY (ns, key)) WITHOUT ROWID");
  sqlite3_stmt* st = nullptr;
  sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO kv (ns, key, value) VALUES ('bench', ?1, ?2)", -1,
                     &st, nullptr);
  std::size_t n = 0;
  auto t0 = wall_clock::now();
  while (seconds_since(t0) < seconds) {
    char key[32];
    int len = std::snprintf(key, sizeof key, "k%zu", n);
    sqlite3_bind_text(st, 1, key, len, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, "0123456789abcdef", 16, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE) break;
    sqlite3_reset(st);
    ++n;
  }
  double rate = static_cast<double>(n) / seconds_since(t0);
  sqlite3_finalize(st);
  sqlite3_close(db);
  return rate;
}

// store_writes.lua on `eng` (a warm-up, then the measured run); reports the
// writes per commit under `prefix`, returns the acknowledged writes/s.
double acked_writes_per_second(server::engine& eng, const options& opts,
                               const std::string& prefix) {
  auto run = [&](std::size_t writers, std::size_t per) {
    auto done = std::make_shared<std::promise<runtime::exit_info>>();
    auto fut = done->get_future();
    runtime::spawn_options so;
    so.args = {value(static_cast<std::int64_t>(writers)), value(static_cast<std::int64_t>(per))};
    so.ctx.permissions = {"store:bench"};
    so.ctx.limits.memory = std::size_t{1} << 30;
    so.on_exit = [done](const runtime::exit_info& e) { done->set_value(e); };
    std::string path = std::string(LUAD_SOURCE_DIR) + "/bench/lua/store_writes.lua";
    (void)eng.scheduler().spawn(eng.scheduler().code().get(path), std::move(so));
    runtime::exit_info e = fut.get();
    if (e.reason != runtime::exit_reason::normal) {
      note("store_writes.lua failed: " + e.err.message);
      std::exit(1);
    }
    return e.results;
  };
  run(100, 10);  // warm-up
  auto commits0 = eng.storage().commits();
  auto writes0 = eng.storage().committed_writes();
  auto r = run(opts.store_writers, opts.store_writes);
  double rate = 0;
  if (const auto* d = r.at(0).get<double>()) rate = *d;
  auto commits = eng.storage().commits() - commits0;
  auto writes = eng.storage().committed_writes() - writes0;
  report(prefix + "writes_per_commit", commits ? static_cast<double>(writes) / commits : 0,
         "writes");
  return rate;
}

}  // namespace

void bench_store(const options& opts) {
  fs::path dir = fresh_dir("luad_bench_store_");
  double naive = naive_writes_per_second(dir, 2.0);
  report("store_naive_autocommit", naive, "writes/s");

  server::engine_options eo;
  eo.scheduler = runtime::scheduler_options::with_workers(opts.workers);
  eo.data_dir = (dir / "luad").string();
  std::string tag = size_tag(opts.store_writers) + "x" + std::to_string(opts.store_writes);
  double rate = 0;
  {
    server::engine eng(eo);
    rate = acked_writes_per_second(eng, opts, "store_");
    report("store_acked_" + tag, rate, "writes/s");
    report("store_vs_naive", naive > 0 ? rate / naive : 0, "x");
  }
  if (const char* pg = std::getenv("LUAD_BENCH_POSTGRES"); pg && *pg) {
    eo.data_dir.clear();
    eo.postgres.conninfo = pg;
    server::engine eng(eo);
    double on_pg = acked_writes_per_second(eng, opts, "store_pg_");
    report("store_pg_acked_" + tag, on_pg, "writes/s");
    report("store_pg_vs_sqlite", rate > 0 ? on_pg / rate : 0, "x");
  }
  fs::remove_all(dir);
}

}  // namespace luad::bench
