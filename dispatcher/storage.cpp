// The storage dispatcher: SQLite in WAL mode, group commit on one writer
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
#include "dispatcher/storage.hpp"

#include <spdlog/spdlog.h>
#include <sqlite3.h>

#include <unistd.h>
#include <chrono>
#include <filesystem>
#include <stdexcept>
#include <string_view>
#include <system_error>

#include "runtime/logging.hpp"
#include "runtime/message_codec.hpp"

namespace luad::dispatcher {

namespace fs = std::filesystem;
using runtime::error;
using runtime::error_kind;

namespace {

constexpr std::size_t k_max_batch = 8192;
constexpr auto k_expiry_every = std::chrono::seconds(1);
constexpr int k_expiry_chunk = 1000;

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// A prepared statement, finalized when it goes out of scope.
class statement {
 public:
  statement(sqlite3* db, const char* sql) : db_(db) {
    if (sqlite3_prepare_v2(db, sql, -1, &st_, nullptr) != SQLITE_OK) {
      throw std::runtime_error(sqlite3_errmsg(db));
    }
  }
  ~statement() { sqlite3_finalize(st_); }
  statement(const statement&) = delete;
  statement& operator=(const statement&) = delete;

  statement& reset() {
    sqlite3_reset(st_);
    sqlite3_clear_bindings(st_);
    return *this;
  }
  statement& blob(int i, std::string_view b) {
    if (b.empty())
      sqlite3_bind_zeroblob(st_, i, 0);  // a null pointer would bind NULL
    else
      sqlite3_bind_blob(st_, i, b.data(), static_cast<int>(b.size()), SQLITE_TRANSIENT);
    return *this;
  }
  statement& real(int i, double d) {
    sqlite3_bind_double(st_, i, d);
    return *this;
  }
  statement& integer(int i, std::int64_t v) {
    sqlite3_bind_int64(st_, i, v);
    return *this;
  }
  statement& null(int i) {
    sqlite3_bind_null(st_, i);
    return *this;
  }
  /// SQLITE_ROW, SQLITE_DONE or an error code.
  int step() { return sqlite3_step(st_); }
  std::string column_blob(int i) const {
    const void* p = sqlite3_column_blob(st_, i);
    return p ? std::string(static_cast<const char*>(p),
                           static_cast<std::size_t>(sqlite3_column_bytes(st_, i)))
             : std::string();
  }
  const char* message() const { return sqlite3_errmsg(db_); }

 private:
  sqlite3* db_;
  sqlite3_stmt* st_ = nullptr;
};

void exec(sqlite3* db, const char* sql) {
  char* msg = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &msg) != SQLITE_OK) {
    std::string why = msg ? msg : sqlite3_errmsg(db);
    sqlite3_free(msg);
    throw std::runtime_error(why);
  }
}

int read_schema_version(sqlite3* db) {
  statement st(db, "SELECT value FROM meta WHERE key = 'schema_version'");
  if (st.step() != SQLITE_ROW) throw std::runtime_error("no schema version recorded");
  std::string v = st.column_blob(0);
  try {
    return std::stoi(v);
  } catch (const std::exception&) {
    throw std::runtime_error("unreadable schema version '" + v + "'");
  }
}

sqlite3* open_db(const std::string& path, int flags) {
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &db, flags | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    std::string why = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    sqlite3_close(db);
    throw std::runtime_error(why);
  }
  sqlite3_busy_timeout(db, 5000);
  sqlite3_extended_result_codes(db, 1);
  // Pages come from a memory map and a 64 MiB cache instead of one read()
  // each: with the default 2 MB cache, half the writer's time went to syscalls.
  sqlite3_exec(db, "PRAGMA cache_size = -65536; PRAGMA mmap_size = 1073741824", nullptr, nullptr,
               nullptr);
  return db;
}

// Creates the schema in a new file, or checks an existing one.
void prepare_schema(sqlite3* db, bool read_only) {
  // The first real read: a file that is not a database, or a corrupt one,
  // fails here (or in prepare) with SQLite's own words.
  statement tables(
      db, "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name = 'meta' DESC");
  int rc = tables.step();
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) throw std::runtime_error(tables.message());
  if (rc == SQLITE_ROW && tables.column_blob(0) != "meta") {
    // Tables, but not ours: refuse rather than write into somebody's file.
    throw std::runtime_error("the file holds other tables (" + tables.column_blob(0) +
                             "): not a luad store");
  }
  if (rc == SQLITE_DONE) {
    if (read_only) throw std::runtime_error("the file is read-only and has no luad schema");
    exec(db,
         "BEGIN IMMEDIATE;"
         "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
         "CREATE TABLE kv (ns BLOB NOT NULL, key BLOB NOT NULL, value BLOB NOT NULL,"
         "  expires REAL, PRIMARY KEY (ns, key)) WITHOUT ROWID;"
         "CREATE INDEX kv_expires ON kv (expires) WHERE expires IS NOT NULL;");
    statement put(db, "INSERT INTO meta (key, value) VALUES ('schema_version', ?1)");
    put.blob(1, std::to_string(storage::schema_version));
    if (put.step() != SQLITE_DONE) throw std::runtime_error(put.message());
    exec(db, "COMMIT");
    return;
  }
  int v = read_schema_version(db);
  if (v > storage::schema_version) {
    throw std::runtime_error("made by a newer luad (schema version " + std::to_string(v) +
                             "; this luad reads up to " + std::to_string(storage::schema_version) +
                             ")");
  }
  if (v < 1) throw std::runtime_error("unknown schema version " + std::to_string(v));
}

// --- arguments --------------------------------------------------------------

std::string_view text_field(const runtime::value& args, std::string_view name) {
  const runtime::value* v = args.find(name);
  const std::string* s = v ? v->get<std::string>() : nullptr;
  return s ? std::string_view(*s) : std::string_view();
}

bool has_field(const runtime::value& args, std::string_view name) {
  const runtime::value* v = args.find(name);
  return v && !v->is_nil();
}

std::int64_t integer_field(const runtime::value& args, std::string_view name,
                           std::int64_t fallback) {
  const runtime::value* v = args.find(name);
  const std::int64_t* i = v ? v->get<std::int64_t>() : nullptr;
  return i ? *i : fallback;
}

// The upper bound of keys starting with `prefix` (exclusive), or "" when there
// is none (a prefix of 0xFF bytes only).
std::string prefix_end(std::string prefix) {
  while (!prefix.empty()) {
    auto last = static_cast<unsigned char>(prefix.back());
    if (last != 0xFF) {
      prefix.back() = static_cast<char>(last + 1);
      return prefix;
    }
    prefix.pop_back();
  }
  return {};
}

// The statements one connection uses, prepared once.
struct reader_statements {
  explicit reader_statements(sqlite3* db)
      : get(db,
            "SELECT value FROM kv WHERE ns = ?1 AND key = ?2 AND (expires IS NULL OR expires > "
            "?3)"),
        list(db,
             "SELECT key, value FROM kv WHERE ns = ?1 AND key >= ?2 AND (?3 = x'' OR key < ?3)"
             " AND (expires IS NULL OR expires > ?4) ORDER BY key LIMIT ?5") {}
  statement get, list;
};

struct writer_statements {
  explicit writer_statements(sqlite3* db)
      : get(db,
            "SELECT value FROM kv WHERE ns = ?1 AND key = ?2 AND (expires IS NULL OR expires > "
            "?3)"),
        put(db, "INSERT OR REPLACE INTO kv (ns, key, value, expires) VALUES (?1, ?2, ?3, ?4)"),
        erase(db, "DELETE FROM kv WHERE ns = ?1 AND key = ?2"),
        begin(db, "BEGIN IMMEDIATE"),
        commit(db, "COMMIT"),
        rollback(db, "ROLLBACK"),
        expire(db,
               "DELETE FROM kv WHERE (ns, key) IN (SELECT ns, key FROM kv WHERE expires <= ?1 "
               "LIMIT ?2)") {}
  statement get, put, erase, begin, commit, rollback, expire;
};

// The live (unexpired) value of ns/key, or nullopt.
std::optional<std::string> live_value(statement& get, std::string_view ns, std::string_view key,
                                      double now, int& rc) {
  get.reset().blob(1, ns).blob(2, key).real(3, now);
  rc = get.step();
  std::optional<std::string> found;
  if (rc == SQLITE_ROW) found = get.column_blob(0);
  if (rc == SQLITE_ROW || rc == SQLITE_DONE) rc = SQLITE_OK;
  // Reset now: a statement left mid-result keeps its read transaction, and
  // with it an old snapshot, open on the connection.
  get.reset();
  return found;
}

error sqlite_failure(sqlite3* db, int rc, const char* doing) {
  std::string msg = std::string("store: ") + doing + ": " + sqlite3_errmsg(db);
  int primary = rc & 0xFF;
  bool retryable = primary == SQLITE_BUSY || primary == SQLITE_LOCKED || primary == SQLITE_FULL ||
                   primary == SQLITE_IOERR;
  return {error_kind::unavailable, std::move(msg), retryable, {}};
}

// Applies one write inside the open transaction. Returns its result, or an
// error for this op alone (nothing changed); a database failure goes to `rc`.
runtime::outcome apply_write(writer_statements& st, const runtime::value& args, double now, int& rc,
                             sqlite3* db) {
  std::string_view op = text_field(args, "op");
  std::string_view ns = text_field(args, "ns");
  std::string_view key = text_field(args, "key");
  rc = SQLITE_OK;
  auto put = [&](std::string_view bytes, const runtime::value* ttl) {
    st.put.reset().blob(1, ns).blob(2, key).blob(3, bytes);
    const double* secs = ttl ? ttl->get<double>() : nullptr;  // the module sends a float
    if (secs)
      st.put.real(4, now + *secs);
    else
      st.put.null(4);
    int r = st.put.step();
    rc = r == SQLITE_DONE ? SQLITE_OK : r;
  };
  if (op == "set") {
    put(text_field(args, "value"), args.find("ttl"));
    if (rc != SQLITE_OK) return runtime::outcome::failure(sqlite_failure(db, rc, "set"));
    return runtime::outcome::success(true);
  }
  if (op == "delete") {
    auto old = live_value(st.get, ns, key, now, rc);
    if (rc != SQLITE_OK) return runtime::outcome::failure(sqlite_failure(db, rc, "delete"));
    st.erase.reset().blob(1, ns).blob(2, key);
    int r = st.erase.step();
    rc = r == SQLITE_DONE ? SQLITE_OK : r;
    if (rc != SQLITE_OK) return runtime::outcome::failure(sqlite_failure(db, rc, "delete"));
    return runtime::outcome::success(old.has_value());
  }
  if (op == "incr") {
    std::int64_t delta = integer_field(args, "by", 1);
    auto old = live_value(st.get, ns, key, now, rc);
    if (rc != SQLITE_OK) return runtime::outcome::failure(sqlite_failure(db, rc, "incr"));
    std::int64_t current = 0;
    if (old && !runtime::decode_integer(*old, current)) {
      return runtime::outcome::failure(
          {error_kind::invalid, "store.incr: the value is not an integer", false, {}});
    }
    std::int64_t next;
    if (__builtin_add_overflow(current, delta, &next)) {
      return runtime::outcome::failure(
          {error_kind::invalid, "store.incr: integer overflow", false, {}});
    }
    std::string bytes;
    runtime::encode_value(runtime::value(next), bytes);
    put(bytes, nullptr);
    if (rc != SQLITE_OK) return runtime::outcome::failure(sqlite_failure(db, rc, "incr"));
    return runtime::outcome::success(next);
  }
  if (op == "cas") {
    auto old = live_value(st.get, ns, key, now, rc);
    if (rc != SQLITE_OK) return runtime::outcome::failure(sqlite_failure(db, rc, "cas"));
    bool want_absent = !has_field(args, "expected");
    bool matches =
        want_absent ? !old.has_value() : (old.has_value() && *old == text_field(args, "expected"));
    if (!matches) return runtime::outcome::success(false);
    if (has_field(args, "value")) {
      put(text_field(args, "value"), nullptr);
    } else {
      st.erase.reset().blob(1, ns).blob(2, key);
      int r = st.erase.step();
      rc = r == SQLITE_DONE ? SQLITE_OK : r;
    }
    if (rc != SQLITE_OK) return runtime::outcome::failure(sqlite_failure(db, rc, "cas"));
    return runtime::outcome::success(true);
  }
  return runtime::outcome::failure(
      {error_kind::invalid, "store: unknown write '" + std::string(op) + "'", false, {}});
}

runtime::outcome apply_read(reader_statements& st, sqlite3* db, const runtime::value& args) {
  std::string_view op = text_field(args, "op");
  std::string_view ns = text_field(args, "ns");
  double now = now_seconds();
  int rc = SQLITE_OK;
  if (op == "get") {
    auto v = live_value(st.get, ns, text_field(args, "key"), now, rc);
    if (rc != SQLITE_OK) return runtime::outcome::failure(sqlite_failure(db, rc, "get"));
    if (!v) return runtime::outcome::success({});
    if (!runtime::valid_message(*v)) {
      return runtime::outcome::failure(
          {error_kind::internal, "store: a stored value is corrupt", false, {}});
    }
    return runtime::outcome::success(std::move(*v));
  }
  if (op == "list") {
    std::string prefix(text_field(args, "prefix"));
    std::string after(text_field(args, "after"));
    std::int64_t limit = integer_field(args, "limit", 100);
    // Start at the prefix, or just after the cursor: the smallest key above
    // `after` is `after` followed by a zero byte.
    std::string from = prefix;
    if (!after.empty() && after >= prefix) from = after + '\0';
    st.list.reset().blob(1, ns).blob(2, from).blob(3, prefix_end(prefix)).real(4, now);
    st.list.integer(5, limit + 1);
    runtime::value::array items;
    std::string cursor;
    bool more = false;
    while ((rc = st.list.step()) == SQLITE_ROW) {
      if (static_cast<std::int64_t>(items.size()) == limit) {
        more = true;
        break;
      }
      std::string k = st.list.column_blob(0), v = st.list.column_blob(1);
      if (!runtime::valid_message(v)) {
        return runtime::outcome::failure(
            {error_kind::internal, "store: a stored value is corrupt", false, {}});
      }
      cursor = k;
      items.emplace_back(
          runtime::value::array{runtime::value(std::move(k)), runtime::value(std::move(v))});
    }
    st.list.reset();  // end the read transaction (see live_value)
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
      return runtime::outcome::failure(sqlite_failure(db, rc, "list"));
    runtime::value::map out;
    out.emplace_back("items", std::move(items));
    if (more) out.emplace_back("cursor", std::move(cursor));
    return runtime::outcome::success(std::move(out));
  }
  return runtime::outcome::failure(
      {error_kind::invalid, "store: unknown read '" + std::string(op) + "'", false, {}});
}

bool is_read(std::string_view op) { return op == "get" || op == "list"; }

}  // namespace

storage::storage(std::string data_dir) : dir_(std::move(data_dir)) {
  if (!dir_.empty()) path_ = (fs::path(dir_) / "luad.db").string();
}

storage::~storage() { stop(); }

void storage::start() {
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
    prepare_schema(wdb_, read_only_);
    rdb_ = open_db(path_, SQLITE_OPEN_READONLY);
    if (read_only_) {
      runtime::logger().warn("store: {} is read-only: writes will fail with unavailable", path_);
    }
  } catch (const std::exception& e) {
    sqlite3_close(wdb_);
    sqlite3_close(rdb_);
    wdb_ = rdb_ = nullptr;
    throw std::runtime_error("store: cannot use " + path_ + ": " + e.what());
  }
  writer_ = std::thread([this] { writer_loop(); });
  reader_ = std::thread([this] { reader_loop(); });
}

void storage::stop() {
  stopping_.store(true);
  for (queue* q : {&writes_, &reads_}) {
    std::lock_guard lock(q->mu);  // so that a thread about to wait sees the flag
    q->cv.notify_all();
  }
  if (writer_.joinable()) writer_.join();
  if (reader_.joinable()) reader_.join();
  fail_all(writes_, "the store is shutting down");
  fail_all(reads_, "the store is shutting down");
  sqlite3_close(wdb_);
  sqlite3_close(rdb_);
  wdb_ = rdb_ = nullptr;
}

void storage::fail_all(queue& q, const char* why) {
  std::deque<job> left;
  {
    std::lock_guard lock(q.mu);
    left.swap(q.jobs);
  }
  for (job& j : left) j.done.fail({error_kind::canceled, why, true, {}});
}

void storage::submit(command&& cmd, completion&& done) {
  if (path_.empty()) {
    done.fail({error_kind::unavailable,
               "store: no data directory (start luad with --data DIR)",
               false,
               {}});
    return;
  }
  std::string_view op = text_field(cmd.args, "op");
  if (!is_read(op) && read_only_) {
    done.fail({error_kind::unavailable, "store: " + path_ + " is read-only", false, {}});
    return;
  }
  queue& q = is_read(op) ? reads_ : writes_;
  std::unique_lock lock(q.mu);
  if (stopping_) {
    lock.unlock();
    done.fail({error_kind::canceled, "the store is shutting down", true, {}});
    return;
  }
  bool was_empty = q.jobs.empty();
  q.jobs.push_back({std::move(cmd), std::move(done)});
  lock.unlock();
  if (was_empty) q.cv.notify_one();  // otherwise its thread is awake and will see it
}

std::uint64_t storage::commits() const {
  std::lock_guard lock(stats_mu_);
  return commits_;
}

std::uint64_t storage::committed_writes() const {
  std::lock_guard lock(stats_mu_);
  return committed_writes_;
}

void storage::writer_loop() {
  writer_statements st(wdb_);
  auto next_expiry = std::chrono::steady_clock::now() + k_expiry_every;
  std::vector<job> batch;
  std::vector<runtime::outcome> results;
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
      st.expire.reset().real(1, now).integer(2, k_expiry_chunk);
      if (st.expire.step() != SQLITE_DONE) {
        runtime::logger().warn("store: expiry failed: {}", sqlite3_errmsg(wdb_));
      }
      next_expiry = std::chrono::steady_clock::now() + k_expiry_every;
      continue;
    }
    if (fault f = fault_.load(); f != applied_fault_) {
      apply_fault(f);
      applied_fault_ = f;
    }
    results.clear();
    int rc = st.begin.reset().step();
    error batch_error;
    bool failed = rc != SQLITE_DONE;
    if (failed) batch_error = sqlite_failure(wdb_, rc, "begin");
    std::size_t applied = 0;
    for (job& j : batch) {
      if (failed) break;
      int op_rc = SQLITE_OK;
      results.push_back(apply_write(st, j.cmd.args, now, op_rc, wdb_));
      ++applied;
      if (op_rc != SQLITE_OK && (op_rc & 0xFF) != SQLITE_CONSTRAINT) {
        failed = true;
        batch_error = sqlite_failure(wdb_, op_rc, "write");
      }
    }
    if (!failed) {
      rc = st.commit.reset().step();
      if (rc != SQLITE_DONE) {
        failed = true;
        batch_error = sqlite_failure(wdb_, rc, "commit");
      }
    }
    if (failed) {
      st.rollback.reset().step();
      runtime::logger().warn("{} ({} writes failed)", batch_error.message, batch.size());
      for (job& j : batch) j.done.fail(batch_error);
    } else {
      {
        std::lock_guard lock(stats_mu_);
        ++commits_;
        committed_writes_ += applied;
      }
      for (std::size_t i = 0; i < batch.size(); ++i) {
        runtime::outcome& o = results[i];
        if (o.err)
          batch[i].done.fail(std::move(*o.err));
        else
          batch[i].done.succeed(std::move(o.val));
      }
    }
    batch.clear();
  }
}

void storage::apply_fault(fault f) {
  // A full disk: cap the file at the pages it has now.
  const char* sql = f == fault::disk_full ? "PRAGMA query_only = 0; PRAGMA max_page_count = 1"
                    : f == fault::read_only
                        ? "PRAGMA query_only = 1"
                        : "PRAGMA query_only = 0; PRAGMA max_page_count = 1073741823";
  try {
    exec(wdb_, sql);
  } catch (const std::exception& e) {
    runtime::logger().warn("store: fault injection failed: {}", e.what());
  }
}

void storage::reader_loop() {
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
