// The store's operations in SQL (the command's map is described in
// storage.hpp): the statements a connection prepares once, a write applied
// inside the writer's transaction under its namespace's quota, a read, and
// the expiry sweep. The storage dispatcher owns the threads that call them.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>

#include "dispatcher/ledger.hpp"
#include "dispatcher/sqlite.hpp"
#include "runtime/value.hpp"

namespace luad::dispatcher {

/// Unix seconds now (the clock of expiry deadlines and journal times).
double now_seconds();

/// The string field `name` of a command's map; "" when absent or not a string.
std::string_view text_field(const runtime::value& args, std::string_view name);

/// The integer field `name` of a command's map; `fallback` when absent or not
/// an integer.
std::int64_t integer_field(const runtime::value& args, std::string_view name,
                           std::int64_t fallback);

/// Whether `op` reads (get, list) rather than writes.
bool is_read(std::string_view op);

/// The upper bound of keys starting with `prefix` (exclusive), or "" when
/// there is none (a prefix of 0xFF bytes only): where a list stops.
std::string prefix_end(std::string prefix);

/// The statements of a connection that reads, prepared once.
struct reader_statements {
  explicit reader_statements(sqlite3* db);
  statement get, list;
};

/// The statements of the writer's connection, prepared once.
struct writer_statements {
  explicit writer_statements(sqlite3* db);
  statement get, put, size, erase, begin, commit, rollback, expire;
};

/// Applies one write inside the writer's open transaction. Returns its
/// result, or an error for this op alone (nothing changed); a database
/// failure goes to `rc`. A write that would grow its namespace past its
/// quota fails with `limit` before anything is written.
runtime::outcome apply_write(writer_statements& st, ledger& book, const runtime::value& args,
                             double now, int& rc, sqlite3* db);

/// Runs one read (get, list) on `db`.
runtime::outcome apply_read(reader_statements& st, sqlite3* db, const runtime::value& args);

/// Deletes some expired rows in one implicit transaction and gives their
/// bytes back to `usage` (under `mu`) once it has committed. Returns the
/// bytes freed.
std::int64_t expire_some(writer_statements& st, sqlite3* db, double now, std::mutex& mu,
                         std::map<std::string, std::int64_t, std::less<>>& usage);

}  // namespace luad::dispatcher
