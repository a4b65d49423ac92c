// The PostgreSQL backend of the store (store_backend), for daemons that share
// one database (issue 16). Two pg_sessions on an io_context of its own: the
// writer's and the reader's.
//
// DESIGN. Writes are group-committed as on SQLite, in two round trips per
// batch whatever its size: the first begins a transaction (READ COMMITTED),
// takes the advisory locks of every namespace and run the batch writes (in
// one order on every daemon, so they cannot deadlock), and reads every row,
// namespace total, run, step and message seq the batch touches; the writes
// are then applied in order to those rows in memory, by the same rules as on
// SQLite (store_write.hpp, journal_rules.hpp); the second sends the rows that
// changed, the totals' deltas and COMMIT. A write is answered once that
// COMMIT has returned. Two daemons writing one namespace (or one run) take
// turns: the second's batch waits for the first's COMMIT, then reads what it
// wrote. (SERIALIZABLE was tried first: its predicate locks are coarse, and
// daemons writing different runs aborted each other's batches; the journal
// benchmark with two daemons lost 95k of 100k writes.) Namespace totals
// live in the database (ns_usage), so a quota holds across daemons. A lost
// connection fails the store writes of the batch in flight with
// `unavailable` (retryable: they did not land) and holds its journal writes
// until the server is back (journal_retry). When it goes after COMMIT was
// sent, the batch is in doubt: the server, once back, says whether its
// transaction committed (pg_xact_status), and the batch is answered by that;
// no write is failed that may have landed, unless the server stays away
// past journal_retry (then the error says the outcome is unknown).
#pragma once

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <atomic>
#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "dispatcher/journal_rules.hpp"
#include "dispatcher/ledger.hpp"
#include "dispatcher/pg_session.hpp"
#include "dispatcher/store_backend.hpp"

namespace luad::dispatcher {

struct postgres_options {
  /// A libpq connection string or postgresql:// URL; a password in it is
  /// never shown (where()). PGPASSWORD and PGPASSFILE work as in libpq.
  std::string conninfo;
  /// The password, when it is not in `conninfo` (the daemon reads it from
  /// [storage] password_env or password_file).
  std::string password{};
  /// Connections this daemon opens: one writes, the others read (at least 2).
  std::size_t pool_size = 4;
  std::chrono::milliseconds statement_timeout{10000};
  /// start() waits this long for the first connection before it gives up.
  std::chrono::milliseconds start_timeout{10000};
};

class postgres_store final : public store_backend, public cluster_backend {
 public:
  explicit postgres_store(postgres_options o);
  ~postgres_store() override;  ///< calls stop()
  postgres_store(const postgres_store&) = delete;
  postgres_store& operator=(const postgres_store&) = delete;

  /// Connects, creates or checks the schema, and reads the namespace totals.
  /// Throws std::runtime_error naming the server (never its password) and
  /// the cause: no server within start_timeout, a schema of a newer luad.
  void start() override;
  void stop() override;

  void submit(command&& cmd, completion&& done) override;

  // journal_backend (postgres_journal.hpp). Reads block on the reader's session.
  void create_run(run_record run, written_fn done) override;
  void set_state(std::string run, run_state state, std::string detail, written_fn done) override;
  void append(journal_entry entry, written_fn done) override;
  void apply_and_append(journal_entry entry, runtime::value store_args, applied_fn done) override;
  void append_message(inbox_message m, written_fn done) override;
  runtime::result<std::vector<run_record>> runs(bool unfinished_only) override;
  runtime::result<run_record> run(std::string_view id) override;
  runtime::result<std::vector<journal_entry>> history(std::string_view run) override;
  runtime::result<std::vector<inbox_message>> messages(std::string_view run) override;

  void set_quotas(store_quotas q) override;
  /// As this daemon last saw it (at start, then after each of its batches).
  std::uint64_t namespace_bytes(std::string_view ns) const override;
  store_counters snapshot() const override;
  const runtime::histogram& commit_durations() const override { return commit_durations_; }
  std::string where() const override { return where_; }
  /// read_only: the writer's session turns default_transaction_read_only on,
  /// so the server refuses its writes; disk_full is faked here: batches fail
  /// as a full disk would fail them.
  void inject(store_fault f) override;

  cluster_backend* cluster() override { return this; }
  // cluster_backend (cluster_backend.hpp).
  runtime::status join(const cluster_options& o) override;
  void renew(std::int64_t load, std::vector<std::string> live, lost_fn done) override;
  void claim(std::size_t max, std::vector<std::string> live, claimed_fn done) override;
  void on_claimable(std::function<void()> wake) override;
  void leave() override;
  runtime::result<std::vector<node_status>> nodes() override;
  runtime::result<std::int64_t> take(const std::string& run) override;
  // Sends by name across nodes (postgres_mail.cpp).
  void publish_name(std::string name, run_name who) override;
  void withdraw_name(std::string name, std::string run) override;
  void find_name(std::string name, name_fn done) override;
  void post_mail(inbox_message m, status_fn done) override;
  void mail_for(std::vector<std::string> runs, std::size_t max, mail_fn done) override;
  void on_mail(std::function<void()> wake) override;
  void run_ended(std::string run, std::string next) override;
  void ended_runs(std::vector<std::string> runs, claimed_fn done) override;
  void on_ended(std::function<void()> wake) override;

  /// The schema version this luad writes; a database with a larger one is refused.
  static constexpr int schema_version = 3;
  /// How often a batch that lost a conflict (a deadlock with a claim or a
  /// leave, a serialization failure) is tried again.
  static constexpr int max_attempts = 8;
  /// How long a journal write is tried again while the server cannot be
  /// reached (a restart, a failover): a durable run waits that long for its
  /// database, rather than stop.
  static constexpr std::chrono::seconds journal_retry{30};

  /// `conninfo` without its password, for logs and errors.
  static std::string redacted(const std::string& conninfo);
  /// Whether `conninfo` holds a password.
  static bool has_password(const std::string& conninfo);

 private:
  struct job {
    command cmd;  // a store operation (for a journal write: its fused one, if any)
    completion done;
    std::unique_ptr<journal_write> journal;  // a journal write, answered through it
    /// A journal write whose batch lost its connection runs again until
    /// then (journal_retry after its first loss); `retried` once it has.
    std::chrono::steady_clock::time_point retry_until{};
    bool retried = false;
  };
  static void finish(job& j, runtime::outcome o);
  void queue_journal(std::unique_ptr<journal_write> w, runtime::value store_args);
  /// Runs `batch` on the reader's session and waits (not on the io thread).
  pg_batch_result run_blocking(std::vector<pg_statement> batch);
  struct batch_state;  // the rows a batch read, and its writes' results (postgres_store.cpp)
  void write_next();   // io thread, as are the rest
  void read_rows();
  void apply_and_commit(pg_batch_result r);
  void end_batch(const runtime::error* e);
  void roll_back(runtime::error e);
  void settle(runtime::error lost);
  void expire_some();
  void schedule_expiry();
  void read(job j);
  runtime::outcome apply_journal(batch_state& b, ledger& book, job& j, double now);
  static const char* mail_channel();
  static const char* ended_channel();
  pg_session& directory();  // the reader that keeps the directory's writes in order
  void directory_write(std::vector<pg_statement> batch, std::string what);
  void post_mail_now(inbox_message m, status_fn done);

  postgres_options opts_;
  std::string where_;
  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> guard_;
  std::thread thread_;
  pg_session& next_reader();  // round robin
  std::shared_ptr<pg_session> writer_, listener_;
  std::vector<std::shared_ptr<pg_session>> readers_;
  std::atomic<std::size_t> next_reader_{0};
  boost::asio::steady_timer expiry_;
  boost::asio::steady_timer pause_;  // a writer waiting for its server (io thread)
  std::atomic<bool> started_{false}, stopping_{false};
  // Writer state: io thread only.
  std::deque<job> queue_;
  std::unique_ptr<batch_state> batch_;
  store_fault fault_ = store_fault::none;
  // The cluster: this node (0 until join), its instance, and the epoch of
  // each run it owns (io thread only, once joined).
  cluster_options cluster_;
  std::string instance_;
  std::unordered_map<std::string, std::int64_t> owned_;
  std::function<void()> wake_, mail_wake_, ended_wake_;
  // Totals and quotas.
  mutable std::mutex usage_mu_;
  std::map<std::string, std::int64_t, std::less<>> usage_;  // guarded by usage_mu_
  std::shared_ptr<const store_quotas> quotas_;              // guarded by usage_mu_
  mutable std::mutex stats_mu_;
  store_counters counters_;  // guarded by stats_mu_ (held_bytes: from usage_)
  runtime::histogram commit_durations_;
};

}  // namespace luad::dispatcher
