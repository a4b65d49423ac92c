// The SQLite backend of the store and the journal (store_backend): one file,
// `<data_dir>/luad.db`, in WAL mode. One writer thread commits every pending
// write in one transaction (group commit) and completes those writes only
// after the commit is durable; reads run on their own connection and thread
// and never wait for the writer. Expired keys are invisible at once and
// deleted in the background. Journal writes (journal_sqlite.hpp) go through
// the same writer queue and batches as store writes, and a store operation
// fused with its journal entry is applied in the same transaction.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "dispatcher/store_backend.hpp"

struct sqlite3;

namespace luad::dispatcher {

struct journal_write;

class sqlite_store final : public store_backend {
 public:
  /// The file is `<data_dir>/luad.db`. An empty `data_dir` makes every
  /// command fail with `unavailable` ("no data directory").
  explicit sqlite_store(std::string data_dir);
  ~sqlite_store() override;  ///< calls stop()
  sqlite_store(const sqlite_store&) = delete;
  sqlite_store& operator=(const sqlite_store&) = delete;

  /// Opens (or creates) the file and starts the threads. Throws
  /// std::runtime_error naming the file and the cause when it cannot be used:
  /// not a database, corrupt, made by a newer luad, or not creatable.
  void start() override;
  /// Finishes the batch being written, fails the rest with `canceled`, joins
  /// the threads and closes the database. Idempotent.
  void stop() override;

  void submit(command&& cmd, completion&& done) override;

  // journal_backend. Writes are refused at once, on the caller's thread, when
  // there is no data directory, the file is read-only, or the store is
  // stopping (`canceled`); otherwise their callbacks run on the writer thread
  // after their batch. Times left 0 (created, updated, at) become the
  // writer's clock. Reads use a connection of their own.
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
  std::uint64_t namespace_bytes(std::string_view ns) const override;
  store_counters snapshot() const override;
  const runtime::histogram& commit_durations() const override { return commit_durations_; }
  std::string where() const override { return path_; }
  /// A full disk: the writer's connection gets no more pages (SQLITE_FULL); a
  /// read-only file: its writes fail with SQLITE_READONLY.
  void inject(store_fault f) override { fault_.store(f); }

  /// The database file's path ("" without a data directory).
  const std::string& path() const { return path_; }

  /// Version written into new files; a file with a larger one is refused.
  static constexpr int schema_version = 5;

 private:
  struct job {
    command cmd;      // a store operation (for a journal write: its fused one, if any)
    completion done;  // a store operation's answer
    std::unique_ptr<journal_write> journal;  // a journal write, answered through it
  };
  struct queue {
    std::mutex mu;
    std::condition_variable cv;
    std::deque<job> jobs;
  };
  void writer_loop();
  void reader_loop();
  struct writer_parts;  // the writer's statements (sqlite_store.cpp)
  static void finish(job& j, runtime::outcome o);
  bool push(queue& q, job& j);  // false when stopping (j is left to the caller)
  void queue_journal(std::unique_ptr<journal_write> w, runtime::value store_args);
  void write_batch(writer_parts& w, std::vector<job>& batch, double now);
  void fail_all(queue& q, const char* why);
  void close_all();
  bool has_journal() const { return file_version_ >= 2; }
  runtime::error journal_closed() const;
  void apply_fault(store_fault f);  // writer thread
  void sum_usage();                 // start(): usage_ from the file

  std::string dir_;
  std::string path_;
  sqlite3* wdb_ = nullptr;                      // the writer's connection
  std::unique_ptr<writer_parts> writer_parts_;  // its statements, prepared by start()
  sqlite3* rdb_ = nullptr;                      // the reader's
  bool read_only_ = false;
  int file_version_ = 0;  // the file's schema version once open
  std::mutex journal_mu_;
  sqlite3* jdb_ = nullptr;  // journal reads (runs, history); guarded by journal_mu_
  std::atomic<store_fault> fault_{store_fault::none};
  store_fault applied_fault_ = store_fault::none;  // writer thread only
  queue writes_, reads_;
  std::atomic<bool> stopping_{false};
  std::thread writer_, reader_;
  // Bytes per namespace: summed at start(), then kept by the writer in step
  // with its transactions (undone when a batch rolls back), so a quota
  // check costs a map lookup.
  mutable std::mutex usage_mu_;
  std::map<std::string, std::int64_t, std::less<>> usage_;  // guarded by usage_mu_
  std::shared_ptr<const store_quotas> quotas_;              // guarded by usage_mu_
  mutable std::mutex stats_mu_;
  std::uint64_t commits_ = 0, committed_writes_ = 0;      // guarded by stats_mu_
  std::uint64_t failed_batches_ = 0, written_bytes_ = 0;  // guarded by stats_mu_
  // The sum of usage_, kept beside it so that a reader need not wait for the
  // usage lock, which the writer holds for a whole batch.
  std::atomic<std::int64_t> held_bytes_{0};
  runtime::histogram commit_durations_;
};

}  // namespace luad::dispatcher
