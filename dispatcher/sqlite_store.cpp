// The SQLite backend (sqlite_store.hpp): WAL mode, group commit on one writer
// thread, reads on a second connection and thread, background expiry.
//
// DESIGN. A write is acknowledged only after the COMMIT that carries it has
// returned with `synchronous = FULL`, i.e. after the WAL was fsynced: a crash of
// the whole process right after cannot lose it. Taking every queued write into
// one transaction makes the fsync cost per write shrink as load grows. One
// failing write (an incr of a string) does not fail its batch: each op is its
// own savepoint-free statement sequence that changes nothing when it fails. A
// failing COMMIT (disk full, read-only file) fails the whole batch with
// `unavailable`, and the transaction is rolled back.
//
// Journal writes (journal_backend; their SQL is in journal_sqlite.cpp) take
// the same queue into the same batches, so a durable run's step costs a share
// of an fsync too. A store operation fused with its entry is applied, then its
// entry written, inside the batch's transaction; an entry the journal refuses
// (a done step, an unknown run) is refused before the store is touched. A
// journal write is several statements that must all land: any database error
// in one fails its whole batch, never half of it.
#include "dispatcher/sqlite_store.hpp"

#include <spdlog/spdlog.h>
#include <sqlite3.h>

#include <unistd.h>
#include <chrono>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string_view>
#include <system_error>
#include <variant>

#include "dispatcher/journal_sqlite.hpp"
#include "dispatcher/ledger.hpp"
#include "dispatcher/sqlite.hpp"
#include "dispatcher/store_ops.hpp"
#include "runtime/logging.hpp"

namespace luad::dispatcher {

namespace fs = std::filesystem;
using runtime::error;
using runtime::error_kind;

namespace {

constexpr std::size_t k_max_batch = 8192;
constexpr auto k_expiry_every = std::chrono::seconds(1);

error no_data_dir() {
  return runtime::fail(error_kind::unavailable,
                       "store: no data directory (start luad with --data DIR)");
}

error read_only_file(const std::string& path) {
  return runtime::fail(error_kind::unavailable, "store: " + path + " is read-only");
}

error shutting_down(const char* why = "the store is shutting down") {
  return runtime::fail(error_kind::canceled, why, true);
}

}  // namespace

sqlite_store::sqlite_store(std::string data_dir)
    : dir_(std::move(data_dir)), quotas_(std::make_shared<const store_quotas>()) {
  if (!dir_.empty()) path_ = (fs::path(dir_) / "luad.db").string();
}

sqlite_store::~sqlite_store() { stop(); }

void sqlite_store::start() {
  if (path_.empty()) return;
  try {
    std::error_code ec;
    fs::create_directories(dir_, ec);
    if (ec) throw std::runtime_error("cannot create the data directory: " + ec.message());
    bool exists = fs::exists(path_);
    read_only_ = exists && access(path_.c_str(), W_OK) != 0;
    int flags = read_only_ ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    wdb_ = open_db(path_, flags);
    if (!read_only_) {
      exec(wdb_, "PRAGMA journal_mode = WAL");
      exec(wdb_, "PRAGMA synchronous = FULL");
      exec(wdb_, "PRAGMA wal_autocheckpoint = 10000");
    }
    file_version_ = prepare_schema(wdb_, read_only_);
    rdb_ = open_db(path_, SQLITE_OPEN_READONLY);
    if (has_journal()) {
      std::lock_guard lock(journal_mu_);
      jdb_ = open_db(path_, SQLITE_OPEN_READONLY);
    }
    sum_usage();
    writer_parts_ = std::make_unique<writer_parts>(wdb_, has_journal());
    if (read_only_) {
      runtime::logger().warn("store: {} is read-only: writes will fail with unavailable", path_);
    }
  } catch (const std::exception& e) {
    writer_parts_.reset();
    close_all();
    throw std::runtime_error("store: cannot use " + path_ + ": " + e.what());
  }
  writer_ = std::thread([this] { writer_loop(); });
  reader_ = std::thread([this] { reader_loop(); });
}

void sqlite_store::stop() {
  stopping_.store(true);
  for (queue* q : {&writes_, &reads_}) {
    std::lock_guard lock(q->mu);  // so that a thread about to wait sees the flag
    q->cv.notify_all();
  }
  if (writer_.joinable()) writer_.join();
  if (reader_.joinable()) reader_.join();
  fail_all(writes_, "the store is shutting down");
  fail_all(reads_, "the store is shutting down");
  writer_parts_.reset();  // its statements, before their connection
  close_all();
}

void sqlite_store::close_all() {
  std::lock_guard lock(journal_mu_);
  for (sqlite3** db : {&wdb_, &rdb_, &jdb_}) {
    sqlite3_close(*db);
    *db = nullptr;
  }
}

void sqlite_store::fail_all(queue& q, const char* why) {
  std::deque<job> left;
  {
    std::lock_guard lock(q.mu);
    left.swap(q.jobs);
  }
  for (job& j : left) finish(j, runtime::outcome::failure(shutting_down(why)));
}

void sqlite_store::finish(job& j, runtime::outcome o) {
  if (j.journal) {
    j.journal->finish(std::move(o));
  } else if (o.err) {
    j.done.fail(std::move(*o.err));
  } else {
    j.done.succeed(std::move(o.val));
  }
}

bool sqlite_store::push(queue& q, job& j) {
  std::unique_lock lock(q.mu);
  if (stopping_) return false;
  bool was_empty = q.jobs.empty();
  q.jobs.push_back(std::move(j));
  lock.unlock();
  if (was_empty) q.cv.notify_one();  // otherwise its thread is awake and will see it
  return true;
}

void sqlite_store::submit(command&& cmd, completion&& done) {
  if (path_.empty()) {
    done.fail(no_data_dir());
    return;
  }
  bool read = is_read(text_field(cmd.args, "op"));
  if (!read && read_only_) {
    done.fail(read_only_file(path_));
    return;
  }
  job j{std::move(cmd), std::move(done), nullptr};
  if (!push(read ? reads_ : writes_, j)) j.done.fail(shutting_down());
}

// --- the journal (journal_backend) ------------------------------------------

void sqlite_store::create_run(run_record run, written_fn done) {
  auto w = std::make_unique<journal_write>(journal_write{std::move(run), std::move(done), {}});
  queue_journal(std::move(w), {});
}

void sqlite_store::set_state(std::string run, run_state state, std::string detail,
                             written_fn done) {
  journal_write::state_change c{std::move(run), state, std::move(detail)};
  queue_journal(std::make_unique<journal_write>(journal_write{std::move(c), std::move(done), {}}),
                {});
}

void sqlite_store::append(journal_entry entry, written_fn done) {
  queue_journal(
      std::make_unique<journal_write>(journal_write{std::move(entry), std::move(done), {}}), {});
}

void sqlite_store::append_message(inbox_message m, written_fn done) {
  queue_journal(std::make_unique<journal_write>(journal_write{std::move(m), std::move(done), {}}),
                {});
}

void sqlite_store::apply_and_append(journal_entry entry, runtime::value store_args,
                                    applied_fn done) {
  queue_journal(
      std::make_unique<journal_write>(journal_write{std::move(entry), {}, std::move(done)}),
      std::move(store_args));
}

void sqlite_store::queue_journal(std::unique_ptr<journal_write> w, runtime::value store_args) {
  std::optional<error> refusal;
  if (path_.empty())
    refusal = no_data_dir();
  else if (read_only_)
    refusal = read_only_file(path_);
  if (refusal) {
    w->finish(runtime::outcome::failure(std::move(*refusal)));
    return;
  }
  job j{{command_id::store_op, std::move(store_args)}, {}, std::move(w)};
  if (!push(writes_, j)) j.journal->finish(runtime::outcome::failure(shutting_down()));
}

runtime::result<std::vector<run_record>> sqlite_store::runs(bool unfinished_only) {
  std::lock_guard lock(journal_mu_);
  if (!jdb_) return journal_closed();
  return read_runs(jdb_, unfinished_only);
}

runtime::result<run_record> sqlite_store::run(std::string_view id) {
  std::lock_guard lock(journal_mu_);
  if (!jdb_) return journal_closed();
  return read_run(jdb_, id);
}

runtime::result<std::vector<journal_entry>> sqlite_store::history(std::string_view run) {
  std::lock_guard lock(journal_mu_);
  if (!jdb_) return journal_closed();
  return read_history(jdb_, run);
}

runtime::result<std::vector<inbox_message>> sqlite_store::messages(std::string_view run) {
  std::lock_guard lock(journal_mu_);
  if (!jdb_) return journal_closed();
  return read_messages(jdb_, run);
}

runtime::error sqlite_store::journal_closed() const {
  if (path_.empty()) return no_data_dir();
  if (file_version_ > 0 && !has_journal()) {
    return runtime::fail(error_kind::unavailable,
                         "journal: " + path_ + " is read-only and older than the journal (schema " +
                             std::to_string(file_version_) + ")");
  }
  return runtime::fail(error_kind::unavailable, "journal: the store is not open");
}

// One pass over the keys at open; length() reads no value pages.
void sqlite_store::sum_usage() {
  statement sum(wdb_, "SELECT ns, SUM(length(key) + length(value)) FROM kv GROUP BY ns");
  std::lock_guard lock(usage_mu_);
  usage_.clear();
  int rc;
  std::int64_t total = 0;
  while ((rc = sum.step()) == SQLITE_ROW) {
    usage_[sum.column_blob(0)] = sum.column_integer(1);
    total += sum.column_integer(1);
  }
  if (rc != SQLITE_DONE) throw std::runtime_error(sum.message());
  held_bytes_.store(total, std::memory_order_relaxed);
}

void sqlite_store::set_quotas(store_quotas q) {
  auto fresh = std::make_shared<const store_quotas>(std::move(q));
  std::lock_guard lock(usage_mu_);
  quotas_ = std::move(fresh);
}

std::uint64_t sqlite_store::namespace_bytes(std::string_view ns) const {
  std::lock_guard lock(usage_mu_);
  auto u = usage_.find(ns);
  return u != usage_.end() && u->second > 0 ? static_cast<std::uint64_t>(u->second) : 0;
}

store_counters sqlite_store::snapshot() const {
  std::int64_t held = held_bytes_.load(std::memory_order_relaxed);
  std::lock_guard lock(stats_mu_);
  return {commits_, committed_writes_, failed_batches_, written_bytes_,
          held > 0 ? static_cast<std::uint64_t>(held) : 0};
}

// The writer's prepared statements and its answers of one batch.
struct sqlite_store::writer_parts {
  writer_parts(sqlite3* connection, bool with_journal) : db(connection), st(db), reads(db) {
    if (with_journal) journal.emplace(db);
  }
  // Applies one queued write inside the batch's transaction; a database
  // failure goes to `rc`.
  runtime::outcome apply(job& j, ledger& book, double now, int& rc);
  runtime::outcome apply_journal(journal_write& w, const runtime::value& store_args, ledger& book,
                                 double now, int& rc);

  sqlite3* db;
  writer_statements st;
  reader_statements reads;  // a fused read runs here, inside the transaction
  std::optional<journal_writer> journal;
  std::vector<runtime::outcome> results;
};

runtime::outcome sqlite_store::writer_parts::apply(job& j, ledger& book, double now, int& rc) {
  if (!j.journal) return apply_write(st, book, j.cmd.args, now, rc, db);
  return apply_journal(*j.journal, j.cmd.args, book, now, rc);
}

runtime::outcome sqlite_store::writer_parts::apply_journal(journal_write& w,
                                                           const runtime::value& store_args,
                                                           ledger& book, double now, int& rc) {
  auto as_outcome = [](runtime::status s) {
    return s ? runtime::outcome::success({}) : runtime::outcome::failure(std::move(s.error()));
  };
  rc = SQLITE_OK;
  if (!journal) {  // submit refuses these first; kept for safety
    return runtime::outcome::failure(
        runtime::fail(error_kind::unavailable, "journal: the file has no journal tables"));
  }
  if (auto* r = std::get_if<run_record>(&w.what))
    return as_outcome(journal->create_run(*r, now, rc));
  if (auto* c = std::get_if<journal_write::state_change>(&w.what))
    return as_outcome(journal->set_state(*c, now, rc));
  if (auto* m = std::get_if<inbox_message>(&w.what))
    return as_outcome(journal->put_message(*m, now, rc));
  auto& e = std::get<journal_entry>(w.what);
  if (!w.applied) return as_outcome(journal->append(e, now, rc));
  // Fused: a refused entry leaves the store untouched; the operation's own
  // failure (limit, invalid) is its journaled result.
  runtime::status ok = journal->claim(e, rc);
  if (!ok || rc != SQLITE_OK) return as_outcome(std::move(ok));
  runtime::outcome o = is_read(text_field(store_args, "op"))
                           ? apply_read(reads, db, store_args)
                           : apply_write(st, book, store_args, now, rc, db);
  if (rc != SQLITE_OK && (rc & 0xFF) != SQLITE_CONSTRAINT) return o;  // the batch fails
  record_outcome(e, o);
  journal->put(e, now, rc);
  return o;
}

void sqlite_store::writer_loop() {
  writer_parts& w = *writer_parts_;
  auto next_expiry = std::chrono::steady_clock::now() + k_expiry_every;
  std::vector<job> batch;
  for (;;) {
    {
      std::unique_lock lock(writes_.mu);
      writes_.cv.wait_until(lock, next_expiry, [&] { return stopping_ || !writes_.jobs.empty(); });
      if (stopping_ && writes_.jobs.empty()) return;
      while (!writes_.jobs.empty() && batch.size() < k_max_batch) {
        batch.push_back(std::move(writes_.jobs.front()));
        writes_.jobs.pop_front();
      }
    }
    double now = now_seconds();
    if (batch.empty() && !read_only_) {  // idle: delete some expired keys
      std::int64_t freed = expire_some(w.st, wdb_, now, usage_mu_, usage_);
      held_bytes_.fetch_sub(freed, std::memory_order_relaxed);
      next_expiry = std::chrono::steady_clock::now() + k_expiry_every;
      continue;
    }
    if (store_fault f = fault_.load(); f != applied_fault_) {
      apply_fault(f);
      applied_fault_ = f;
    }
    write_batch(w, batch, now);
    batch.clear();
  }
}

void sqlite_store::write_batch(writer_parts& w, std::vector<job>& batch, double now) {
  w.results.clear();
  auto began = std::chrono::steady_clock::now();
  std::unique_lock usage_lock(usage_mu_);  // (readers of namespace_bytes wait a batch)
  std::shared_ptr<const store_quotas> q = quotas_;
  ledger book(usage_, *q);
  int rc = w.st.begin.reset().step();
  error batch_error;
  bool failed = rc != SQLITE_DONE;
  if (failed) batch_error = sqlite_failure(wdb_, rc, "begin");
  for (job& j : batch) {
    if (failed) break;
    int op_rc = SQLITE_OK;
    w.results.push_back(w.apply(j, book, now, op_rc));
    // A store write that breaks a constraint failed alone and changed nothing;
    // a journal write is several statements that must all land.
    if (op_rc != SQLITE_OK && (j.journal || (op_rc & 0xFF) != SQLITE_CONSTRAINT)) {
      failed = true;
      batch_error = sqlite_failure(wdb_, op_rc, "write");
    }
  }
  if (!failed) {
    rc = w.st.commit.reset().step();
    if (rc != SQLITE_DONE) {
      failed = true;
      batch_error = sqlite_failure(wdb_, rc, "commit");
    }
  }
  std::uint64_t written = failed ? 0 : book.written();
  if (failed) {
    book.undo();
  } else {
    held_bytes_.fetch_add(book.net(), std::memory_order_relaxed);
    book.committed();
  }
  usage_lock.unlock();
  if (failed) {
    w.st.rollback.reset().step();
    if (w.journal) w.journal->rolled_back();
    runtime::logger().warn("{} ({} writes failed)", batch_error.message, batch.size());
    {
      std::lock_guard lock(stats_mu_);
      ++failed_batches_;
    }
    for (job& j : batch) finish(j, runtime::outcome::failure(batch_error));
    return;
  }
  commit_durations_.observe(std::chrono::steady_clock::now() - began);
  {
    std::lock_guard lock(stats_mu_);
    ++commits_;
    committed_writes_ += batch.size();
    written_bytes_ += written;
  }
  for (std::size_t i = 0; i < batch.size(); ++i) finish(batch[i], std::move(w.results[i]));
}

void sqlite_store::apply_fault(store_fault f) {
  if (f == store_fault::commit_answer_lost) return;  // (a network's fault: no network here)
  // A full disk: cap the file at the pages it has now.
  const char* sql = f == store_fault::disk_full ? "PRAGMA query_only = 0; PRAGMA max_page_count = 1"
                    : f == store_fault::read_only
                        ? "PRAGMA query_only = 1"
                        : "PRAGMA query_only = 0; PRAGMA max_page_count = 1073741823";
  try {
    exec(wdb_, sql);
  } catch (const std::exception& e) {
    runtime::logger().warn("store: fault injection failed: {}", e.what());
  }
}

void sqlite_store::reader_loop() {
  reader_statements st(rdb_);
  for (;;) {
    job j;
    {
      std::unique_lock lock(reads_.mu);
      reads_.cv.wait(lock, [&] { return stopping_ || !reads_.jobs.empty(); });
      if (stopping_ && reads_.jobs.empty()) return;
      j = std::move(reads_.jobs.front());
      reads_.jobs.pop_front();
    }
    if (j.done.abandoned()) continue;  // its process is gone
    runtime::outcome o = apply_read(st, rdb_, j.cmd.args);
    if (o.err)
      j.done.fail(std::move(*o.err));
    else
      j.done.succeed(std::move(o.val));
  }
}

}  // namespace luad::dispatcher
