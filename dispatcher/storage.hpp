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
// full, read-only file; retryable when it may pass).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "dispatcher/registry.hpp"

struct sqlite3;

namespace luad::dispatcher {

class storage final : public handler {
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

  /// The database file's path ("" without a data directory).
  const std::string& path() const { return path_; }
  /// Commits so far and the writes they carried (group-commit efficiency).
  std::uint64_t commits() const;
  std::uint64_t committed_writes() const;

  /// Fault injection for tests: makes the writer's connection behave as on a
  /// full disk (no more pages: SQLITE_FULL) or a read-only file (writes fail
  /// with SQLITE_READONLY), from the next batch on. `none` undoes it.
  enum class fault : std::uint8_t { none, disk_full, read_only };
  void inject(fault f) { fault_.store(f); }

  /// Version written into new files; a file with a larger one is refused.
  static constexpr int schema_version = 1;
  /// Largest key, in bytes.
  static constexpr std::size_t max_key = 1024;
  /// Most items one list call returns.
  static constexpr std::int64_t max_list = 1000;

 private:
  struct job {
    command cmd;
    completion done;
  };
  struct queue {
    std::mutex mu;
    std::condition_variable cv;
    std::deque<job> jobs;
  };
  void writer_loop();
  void reader_loop();
  void fail_all(queue& q, const char* why);
  void apply_fault(fault f);  // writer thread

  std::string dir_;
  std::string path_;
  sqlite3* wdb_ = nullptr;  // the writer's connection
  sqlite3* rdb_ = nullptr;  // the reader's
  bool read_only_ = false;
  std::atomic<fault> fault_{fault::none};
  fault applied_fault_ = fault::none;  // writer thread only
  queue writes_, reads_;
  std::atomic<bool> stopping_{false};
  std::thread writer_, reader_;
  mutable std::mutex stats_mu_;
  std::uint64_t commits_ = 0, committed_writes_ = 0;
};

}  // namespace luad::dispatcher
