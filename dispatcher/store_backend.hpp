// The seam between the storage dispatcher (dispatcher/storage.hpp) and the
// database that keeps the store and the journal of durable runs.
//
// DESIGN. A backend owns its connections and threads: it takes store_op
// commands and journal writes, groups them into transactions, and answers
// each only once its transaction is durable; answers run on its own threads,
// never on a worker. Both parts share the backend so that a store operation
// fused with its journal entry (journal_backend::apply_and_append) lands in
// one transaction. The SQLite backend (dispatcher/sqlite_store.*) is the
// first; a PostgreSQL one follows behind the same interface (issue 16). What
// the store means (its ops, TTLs, namespaces, quotas; storage.hpp) is the
// same on every backend, and the tests of the store and of durable runs are
// the proof of that.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>

#include "dispatcher/cluster_backend.hpp"
#include "dispatcher/journal.hpp"
#include "dispatcher/registry.hpp"
#include "runtime/histogram.hpp"

namespace luad::dispatcher {

/// Byte quotas of namespaces, counting keys plus values (expired rows count
/// until deleted): a namespace in `by_namespace` has that quota, any other
/// `default_bytes`; 0 = no quota.
struct store_quotas {
  std::uint64_t default_bytes = std::uint64_t{64} << 20;
  std::map<std::string, std::uint64_t, std::less<>> by_namespace;
};

/// What a backend's writer has done so far, for stats and metrics.
struct store_counters {
  std::uint64_t commits = 0;         ///< batches committed
  std::uint64_t writes = 0;          ///< writes they carried (store and journal)
  std::uint64_t failed_batches = 0;  ///< batches rolled back (disk full, read-only file...)
  std::uint64_t written_bytes = 0;   ///< keys + values put by committed store writes
  std::uint64_t held_bytes = 0;      ///< keys + values the store holds, as quotas count them
};

/// Faults a test may inject into a backend's writer (from its next batch on):
/// a full disk, or a database that has become read-only. `none` undoes it.
/// `commit_answer_lost` (PostgreSQL only; SQLite ignores it): the next
/// COMMIT runs, then its answer is treated as lost with the connection, once.
enum class store_fault : std::uint8_t { none, disk_full, read_only, commit_answer_lost };

/// A database behind the store and the journal. Thread-safe: any thread may
/// call any member, except that start and stop are called once each, in order,
/// by the owner.
class store_backend : public journal_backend {
 public:
  virtual ~store_backend() = default;

  /// Opens the database (migrating its schema) and starts the threads.
  /// Throws std::runtime_error naming the database and the cause when it
  /// cannot be used.
  virtual void start() = 0;
  /// Finishes the batch being written, fails the rest with `canceled`, and
  /// closes the database. Idempotent.
  virtual void stop() = 0;

  /// Runs a store_op command (its map: dispatcher/storage.hpp). `done` runs
  /// on the backend's thread, once a write is durable or has failed.
  virtual void submit(command&& cmd, completion&& done) = 0;

  /// Replaces the quotas; the writer uses them from its next batch on. A
  /// namespace already past a lowered quota keeps its data; only writes that
  /// would grow it fail.
  virtual void set_quotas(store_quotas q) = 0;
  /// Bytes `ns` holds now, as the quota counts them.
  virtual std::uint64_t namespace_bytes(std::string_view ns) const = 0;
  virtual store_counters snapshot() const = 0;
  /// How long each committed batch took, from its start to the end of its
  /// commit (the fsync included).
  virtual const runtime::histogram& commit_durations() const = 0;
  /// Where the data lives, for logs and errors: a file's path, or a server
  /// without its password; "" when there is no database (every command then
  /// fails with `unavailable`).
  virtual std::string where() const = 0;

  /// Fault injection for tests (store_fault).
  virtual void inject(store_fault f) = 0;

  /// Sharing the database with other daemons, when this backend can
  /// (PostgreSQL); nullptr for a daemon's own database (SQLite).
  virtual cluster_backend* cluster() { return nullptr; }
};

}  // namespace luad::dispatcher
