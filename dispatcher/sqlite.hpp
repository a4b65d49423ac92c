// SQLite plumbing of the storage dispatcher's files: a prepared statement that
// finalizes itself, exec, opening a connection, the schema of luad's database
// file (created, migrated or refused), and a SQLite failure as a runtime error.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "runtime/value.hpp"

namespace luad::dispatcher {

/// A prepared statement, finalized when it goes out of scope. Used by one
/// thread at a time (its connection's). The constructor throws
/// std::runtime_error with SQLite's message when `sql` does not compile.
class statement {
 public:
  statement(sqlite3* db, const char* sql);
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
  statement& text(int i, std::string_view t) {
    // A null pointer would bind NULL, as in blob().
    sqlite3_bind_text(st_, i, t.data() ? t.data() : "", static_cast<int>(t.size()),
                      SQLITE_TRANSIENT);
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
  std::int64_t column_integer(int i) const { return sqlite3_column_int64(st_, i); }
  double column_real(int i) const { return sqlite3_column_double(st_, i); }
  /// The column's bytes (a blob, or a text's); "" for NULL.
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

/// Runs `sql` (one or more statements); throws std::runtime_error with
/// SQLite's message on failure.
void exec(sqlite3* db, const char* sql);

/// Opens `path` with `flags` (plus SQLITE_OPEN_NOMUTEX: one thread per
/// connection), a 5 s busy timeout, extended result codes, a 64 MiB cache and
/// a memory map. Throws std::runtime_error with SQLite's message.
sqlite3* open_db(const std::string& path, int flags);

/// meta.schema_version of an open luad file; throws when absent or unreadable.
int read_schema_version(sqlite3* db);

/// Creates luad's schema in a new file, or migrates an older one in place
/// (one transaction), and returns the file's version (sqlite_store::schema_version,
/// or an older one for a read-only file, which cannot be migrated). A file
/// made by a newer luad, somebody else's tables, or a file that is not a
/// database throw std::runtime_error saying so.
int prepare_schema(sqlite3* db, bool read_only);

/// A failed SQLite call as the error a command gets: `unavailable`, named
/// "store: <doing>: <SQLite's message>", retryable when it may pass (busy,
/// locked, full, I/O).
runtime::error sqlite_failure(sqlite3* db, int rc, const char* doing);

}  // namespace luad::dispatcher
