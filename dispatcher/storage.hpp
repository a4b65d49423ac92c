// The storage dispatcher: the store_op command handler and the journal of
// durable runs, in front of one database backend (store_backend.hpp). SQLite
// in the data directory is the default and, so far, the only backend
// (sqlite_store.hpp).
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
// arguments, incr of a non-integer), `unavailable` (no database, disk full,
// read-only file; retryable when it may pass), `limit` (the write would take
// its namespace past its byte quota; nothing is written).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "dispatcher/store_backend.hpp"

namespace luad::dispatcher {

class storage final : public handler, public journal_backend {
 public:
  using quotas = store_quotas;
  using counters = store_counters;
  using fault = store_fault;

  /// SQLite in `<data_dir>/luad.db`. An empty `data_dir` makes every command
  /// fail with `unavailable` ("no data directory").
  explicit storage(std::string data_dir);
  /// Any backend (not started yet).
  explicit storage(std::unique_ptr<store_backend> backend);
  ~storage();  ///< calls stop()
  storage(const storage&) = delete;
  storage& operator=(const storage&) = delete;

  /// Registers store_op in `r`.
  void register_in(registry& r) { r.add(command_id::store_op, *this); }
  /// Starts the backend; throws std::runtime_error naming the database and
  /// the cause when it cannot be used.
  void start() { backend_->start(); }
  /// Stops the backend (see store_backend::stop). Idempotent.
  void stop() { backend_->stop(); }

  void submit(command&& cmd, completion&& done) override;

  // journal_backend, as the backend keeps it.
  void create_run(run_record run, written_fn done) override;
  void set_state(std::string run, run_state state, std::string detail, written_fn done) override;
  void append(journal_entry entry, written_fn done) override;
  void apply_and_append(journal_entry entry, runtime::value store_args, applied_fn done) override;
  void append_message(inbox_message m, written_fn done) override;
  runtime::result<std::vector<run_record>> runs(bool unfinished_only) override;
  runtime::result<run_record> run(std::string_view id) override;
  runtime::result<std::vector<journal_entry>> history(std::string_view run) override;
  runtime::result<std::vector<inbox_message>> messages(std::string_view run) override;

  /// See store_backend.
  void set_quotas(quotas q) { backend_->set_quotas(std::move(q)); }
  std::uint64_t namespace_bytes(std::string_view ns) const { return backend_->namespace_bytes(ns); }
  counters snapshot() const { return backend_->snapshot(); }
  const runtime::histogram& commit_durations() const { return backend_->commit_durations(); }
  void inject(fault f) { backend_->inject(f); }
  /// See store_backend::cluster (nullptr: not shared with other daemons).
  cluster_backend* cluster() { return backend_->cluster(); }
  /// Where the data lives ("" without a database).
  std::string where() const { return backend_->where(); }
  /// Commits so far and the writes they carried (group-commit efficiency).
  std::uint64_t commits() const { return snapshot().commits; }
  std::uint64_t committed_writes() const { return snapshot().writes; }

  /// Largest key, in bytes.
  static constexpr std::size_t max_key = 1024;
  /// Most items one list call returns.
  static constexpr std::int64_t max_list = 1000;

 private:
  std::unique_ptr<store_backend> backend_;
};

}  // namespace luad::dispatcher
