// The storage dispatcher: a key-value store in one SQLite file (WAL mode) in
// the data directory. One writer thread commits every pending write in one
// transaction (group commit) and completes those writes only after the commit
// is durable; reads run on their own connection and thread and never wait for
// the writer. Expired keys are invisible at once and deleted in the background.
//
// A command (command_id::store_op) carries a map:
//   op      "get" | "set" | "delete" | "incr" | "cas" | "list"
//   ns      namespace (the module checked the permission)
//   key     key bytes (get, set, delete, incr, cas)
//   value   encoded value (set; cas: the new value, absent = delete)
//   expected encoded value (cas; absent = the key must not exist)
//   ttl     seconds (set; absent = forever)
//   by      integer (incr)
//   prefix, after, limit (list)
// Results: get → encoded value or nil; set → true; delete → whether the key
// existed; incr → the new integer; cas → whether it swapped; list → {items =
// {{key, value}...}, cursor = last key or nil}. Errors: `invalid` (bad
// arguments, incr of a non-integer), `unavailable` (no data directory, disk
// full, read-only file; retryable when it may pass), `limit` (the write would
// take its namespace past its byte quota; nothing is written).
//
// The same file keeps the journal of durable runs (journal_backend, see
// dispatcher/journal.hpp and journal_sqlite.hpp): journal writes go through
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

#include "dispatcher/journal.hpp"
#include "dispatcher/registry.hpp"
#include "runtime/histogram.hpp"

struct sqlite3;

namespace luad::dispatcher {

struct journal_write;

class storage final : public handler, public journal_backend {
 public:
  /// The file is `<data_dir>/luad.db`. An empty `data_dir` makes every
  /// command fail with `unavailable` ("no data directory").
  explicit storage(std::string data_dir);
  ~storage();  ///< calls stop()
  storage(const storage&) = delete;
  storage& operator=(const storage&) = delete;

  /// Registers store_op in `r`.
  void register_in(registry& r) { r.add(command_id::store_op, *this); }
  /// Opens (or creates) the database and starts the threads. Throws
  /// std::runtime_error naming the file and the cause when it cannot be used:
  /// not a database, corrupt, made by a newer luad, or not creatable.
  void start();
  /// Finishes the batch being written, fails the rest with `canceled`, joins
  /// the threads and closes the database. Idempotent.
  void stop();

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

  /// Byte quotas of namespaces, counting keys plus values (expired rows
  /// count until deleted): a namespace in `by_namespace` has that quota,
  /// any other `default_bytes`; 0 = no quota.
  struct quotas {
    std::uint64_t default_bytes = std::uint64_t{64} << 20;
    std::map<std::string, std::uint64_t, std::less<>> by_namespace;
  };
  /// Replaces the quotas; the writer uses them from its next batch on.
  /// Thread-safe. A namespace already past a lowered quota keeps its data;
  /// only writes that would grow it fail.
  void set_quotas(quotas q);
  /// Bytes `ns` holds now (as the quota counts them). Thread-safe.
  std::uint64_t namespace_bytes(std::string_view ns) const;

  /// The database file's path ("" without a data directory).
  const std::string& path() const { return path_; }
  /// Commits so far and the writes they carried (group-commit efficiency).
  std::uint64_t commits() const;
  std::uint64_t committed_writes() const;
  /// What the writer has done so far, for stats and metrics. Thread-safe.
  struct counters {
    std::uint64_t commits = 0;         ///< batches committed
    std::uint64_t writes = 0;          ///< writes they carried (store and journal)
    std::uint64_t failed_batches = 0;  ///< batches rolled back (disk full, read-only file...)
    std::uint64_t written_bytes = 0;   ///< keys + values put by committed store writes
    std::uint64_t held_bytes = 0;      ///< keys + values the store holds, as quotas count them
  };
  counters snapshot() const;
  /// How long each committed batch took, from BEGIN to the end of its
  /// COMMIT (the fsync included). Thread-safe.
  const runtime::histogram& commit_durations() const { return commit_durations_; }

  /// Fault injection for tests: makes the writer's connection behave as on a
  /// full disk (no more pages: SQLITE_FULL) or a read-only file (writes fail
  /// with SQLITE_READONLY), from the next batch on. `none` undoes it.
  enum class fault : std::uint8_t { none, disk_full, read_only };
  void inject(fault f) { fault_.store(f); }

  /// Version written into new files; a file with a larger one is refused.
  static constexpr int schema_version = 5;
  /// Largest key, in bytes.
  static constexpr std::size_t max_key = 1024;
  /// Most items one list call returns.
  static constexpr std::int64_t max_list = 1000;

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
  struct writer_parts;  // the writer's statements (storage.cpp)
  static void finish(job& j, runtime::outcome o);
  bool push(queue& q, job& j);  // false when stopping (j is left to the caller)
  void queue_journal(std::unique_ptr<journal_write> w, runtime::value store_args);
  void write_batch(writer_parts& w, std::vector<job>& batch, double now);
  void fail_all(queue& q, const char* why);
  void close_all();
  bool has_journal() const { return file_version_ >= 2; }
  runtime::error journal_closed() const;
  void apply_fault(fault f);  // writer thread
  void sum_usage();           // start(): usage_ from the file

  std::string dir_;
  std::string path_;
  sqlite3* wdb_ = nullptr;                      // the writer's connection
  std::unique_ptr<writer_parts> writer_parts_;  // its statements, prepared by start()
  sqlite3* rdb_ = nullptr;                      // the reader's
  bool read_only_ = false;
  int file_version_ = 0;  // the file's schema version once open
  std::mutex journal_mu_;
  sqlite3* jdb_ = nullptr;  // journal reads (runs, history); guarded by journal_mu_
  std::atomic<fault> fault_{fault::none};
  fault applied_fault_ = fault::none;  // writer thread only
  queue writes_, reads_;
  std::atomic<bool> stopping_{false};
  std::thread writer_, reader_;
  // Bytes per namespace: summed at start(), then kept by the writer in step
  // with its transactions (undone when a batch rolls back), so a quota
  // check costs a map lookup.
  mutable std::mutex usage_mu_;
  std::map<std::string, std::int64_t, std::less<>> usage_;  // guarded by usage_mu_
  std::shared_ptr<const quotas> quotas_;                    // guarded by usage_mu_
  mutable std::mutex stats_mu_;
  std::uint64_t commits_ = 0, committed_writes_ = 0;      // guarded by stats_mu_
  std::uint64_t failed_batches_ = 0, written_bytes_ = 0;  // guarded by stats_mu_
  // The sum of usage_, kept beside it so that a reader need not wait for the
  // usage lock, which the writer holds for a whole batch.
  std::atomic<std::int64_t> held_bytes_{0};
  runtime::histogram commit_durations_;
};

}  // namespace luad::dispatcher
