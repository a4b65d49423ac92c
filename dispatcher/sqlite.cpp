// SQLite plumbing of the storage dispatcher: statements, connections, the
// schema of luad's database file, and SQLite failures as runtime errors.
#include "dispatcher/sqlite.hpp"

#include <iterator>
#include <stdexcept>

#include "dispatcher/sqlite_store.hpp"

namespace luad::dispatcher {

statement::statement(sqlite3* db, const char* sql) : db_(db) {
  if (sqlite3_prepare_v2(db, sql, -1, &st_, nullptr) != SQLITE_OK) {
    throw std::runtime_error(sqlite3_errmsg(db));
  }
}

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

namespace {

// The schema, one step per version: a new file takes every step, an older
// file the steps past its version, all in one transaction with the new
// version number. Steps are only ever added (a file must be migratable).
constexpr const char* k_schema_steps[] = {
    // 1: the key-value store.
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "CREATE TABLE kv (ns BLOB NOT NULL, key BLOB NOT NULL, value BLOB NOT NULL,"
    "  expires REAL, PRIMARY KEY (ns, key)) WITHOUT ROWID;"
    "CREATE INDEX kv_expires ON kv (expires) WHERE expires IS NOT NULL;",
    // 2: durable runs and their journals (dispatcher/journal_sqlite.cpp). The
    // journal keeps its rowid: rows go to the end of the table in the order
    // they are written and only the (run, step) index is scattered, where
    // WITHOUT ROWID wrote 1.6 times the WAL bytes and cost 1.4 times the CPU
    // per step with 1,000 runs appending at once (docs/store.md).
    "CREATE TABLE runs (id TEXT PRIMARY KEY, workflow TEXT NOT NULL, owner TEXT NOT NULL,"
    "  script TEXT NOT NULL, code_hash TEXT NOT NULL, args BLOB NOT NULL, state TEXT NOT NULL,"
    "  detail TEXT NOT NULL, steps INTEGER NOT NULL, created REAL NOT NULL,"
    "  updated REAL NOT NULL);"
    "CREATE INDEX runs_unfinished ON runs (created)"
    "  WHERE state NOT IN ('completed', 'failed', 'terminated');"
    "CREATE TABLE journal (run TEXT NOT NULL, step INTEGER NOT NULL, command INTEGER NOT NULL,"
    "  args BLOB NOT NULL, state INTEGER NOT NULL, failed INTEGER NOT NULL,"
    "  result BLOB NOT NULL, at REAL NOT NULL, PRIMARY KEY (run, step));",
    // 3: what started a run (the spawn request, JSON), to start it again when
    // it is resumed after a restart (server/durable_runs.cpp).
    "ALTER TABLE runs ADD COLUMN spawn TEXT NOT NULL DEFAULT '{}';",
    // 4: messages sent to durable runs, recorded before they are delivered
    // (dispatcher/durable.cpp, the inbox).
    "CREATE TABLE inbox (run TEXT NOT NULL, seq INTEGER NOT NULL, sender TEXT NOT NULL,"
    "  topic BLOB NOT NULL, payload BLOB NOT NULL, at REAL NOT NULL, PRIMARY KEY (run, seq));",
    // 5: a run's count of steps is its journal's (MAX(step) + 1, read through
    // the (run, step) key), no longer a column updated at every step: that
    // UPDATE was a third of the writer's work per durable step
    // (docs/performance.md, "Durable runs").
    "ALTER TABLE runs DROP COLUMN steps;",
};
static_assert(std::size(k_schema_steps) == sqlite_store::schema_version,
              "sqlite_store::schema_version must count the schema's steps");

// Takes a file at version `from` (0: empty) to the current version.
void migrate(sqlite3* db, int from) {
  exec(db, "BEGIN IMMEDIATE");
  try {
    for (int v = from; v < sqlite_store::schema_version; ++v) exec(db, k_schema_steps[v]);
    statement put(db, "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?1)");
    put.blob(1, std::to_string(sqlite_store::schema_version));
    if (put.step() != SQLITE_DONE) throw std::runtime_error(put.message());
  } catch (const std::exception&) {
    sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
  exec(db, "COMMIT");
}

}  // namespace

int prepare_schema(sqlite3* db, bool read_only) {
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
  tables.reset();
  int v = 0;
  if (rc == SQLITE_DONE) {
    if (read_only) throw std::runtime_error("the file is read-only and has no luad schema");
  } else {
    v = read_schema_version(db);
    if (v > sqlite_store::schema_version) {
      throw std::runtime_error("made by a newer luad (schema version " + std::to_string(v) +
                               "; this luad reads up to " +
                               std::to_string(sqlite_store::schema_version) + ")");
    }
    if (v < 1) throw std::runtime_error("unknown schema version " + std::to_string(v));
  }
  if (v == sqlite_store::schema_version || read_only) return v;
  migrate(db, v);
  return sqlite_store::schema_version;
}

runtime::error sqlite_failure(sqlite3* db, int rc, const char* doing) {
  std::string msg = std::string("store: ") + doing + ": " + sqlite3_errmsg(db);
  int primary = rc & 0xFF;
  bool retryable = primary == SQLITE_BUSY || primary == SQLITE_LOCKED || primary == SQLITE_FULL ||
                   primary == SQLITE_IOERR;
  return {runtime::error_kind::unavailable, std::move(msg), retryable, {}};
}

}  // namespace luad::dispatcher
