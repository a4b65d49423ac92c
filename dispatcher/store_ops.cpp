// The store's operations in SQL (see store_ops.hpp): gets, lists, sets,
// deletes, incr and cas, each as a short statement sequence that changes
// nothing when it fails, and the expiry sweep.
#include "dispatcher/store_ops.hpp"

#include <spdlog/spdlog.h>

#include <chrono>
#include <optional>
#include <utility>
#include <vector>

#include "dispatcher/store_write.hpp"
#include "runtime/logging.hpp"
#include "runtime/message_codec.hpp"

namespace luad::dispatcher {

using runtime::error_kind;

namespace {

constexpr int k_expiry_chunk = 1000;

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

}  // namespace

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string_view text_field(const runtime::value& args, std::string_view name) {
  const runtime::value* v = args.find(name);
  const std::string* s = v ? v->get<std::string>() : nullptr;
  return s ? std::string_view(*s) : std::string_view();
}

std::int64_t integer_field(const runtime::value& args, std::string_view name,
                           std::int64_t fallback) {
  const runtime::value* v = args.find(name);
  const std::int64_t* i = v ? v->get<std::int64_t>() : nullptr;
  return i ? *i : fallback;
}

bool is_read(std::string_view op) { return op == "get" || op == "list"; }

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

reader_statements::reader_statements(sqlite3* db)
    : get(db,
          "SELECT value FROM kv WHERE ns = ?1 AND key = ?2 AND (expires IS NULL OR expires > "
          "?3)"),
      list(db,
           "SELECT key, value FROM kv WHERE ns = ?1 AND key >= ?2 AND (?3 = x'' OR key < ?3)"
           " AND (expires IS NULL OR expires > ?4) ORDER BY key LIMIT ?5") {}

writer_statements::writer_statements(sqlite3* db)
    : get(db,
          "SELECT value FROM kv WHERE ns = ?1 AND key = ?2 AND (expires IS NULL OR expires > "
          "?3)"),
      put(db, "INSERT OR REPLACE INTO kv (ns, key, value, expires) VALUES (?1, ?2, ?3, ?4)"),
      // length() of a blob reads its size, not its pages.
      size(db,
           "SELECT length(key) + length(value), expires IS NULL OR expires > ?3 FROM kv"
           " WHERE ns = ?1 AND key = ?2"),
      erase(db, "DELETE FROM kv WHERE ns = ?1 AND key = ?2"),
      begin(db, "BEGIN IMMEDIATE"),
      commit(db, "COMMIT"),
      rollback(db, "ROLLBACK"),
      expire(db,
             "DELETE FROM kv WHERE (ns, key) IN (SELECT ns, key FROM kv WHERE expires <= ?1 "
             "LIMIT ?2) RETURNING ns, length(key) + length(value)") {}

namespace {

// The writer's statements as the rows a store write sees (store_write.hpp).
// `rc` keeps SQLite's code of the last failure: the writer decides by it
// whether the batch fails.
struct sqlite_rows final : store_rows {
  sqlite_rows(writer_statements& statements, sqlite3* connection)
      : st(statements), db(connection) {}
  bool find(std::string_view ns, std::string_view key, double now, stored_row& row) override {
    st.size.reset().blob(1, ns).blob(2, key).real(3, now);
    rc = st.size.step();
    row = {};
    if (rc == SQLITE_ROW) row = {st.size.column_integer(0), st.size.column_integer(1) != 0};
    st.size.reset();
    return done(rc == SQLITE_ROW || rc == SQLITE_DONE);
  }
  bool live_value(std::string_view ns, std::string_view key, double now,
                  std::optional<std::string>& value) override {
    value = dispatcher::live_value(st.get, ns, key, now, rc);
    return rc == SQLITE_OK;
  }
  bool put(std::string_view ns, std::string_view key, std::string_view value,
           std::optional<double> expires) override {
    st.put.reset().blob(1, ns).blob(2, key).blob(3, value);
    if (expires)
      st.put.real(4, *expires);
    else
      st.put.null(4);
    rc = st.put.step();
    return done(rc == SQLITE_DONE);
  }
  bool erase(std::string_view ns, std::string_view key) override {
    st.erase.reset().blob(1, ns).blob(2, key);
    rc = st.erase.step();
    return done(rc == SQLITE_DONE);
  }
  runtime::error failure(const char* during) override { return sqlite_failure(db, rc, during); }

  bool done(bool ok) {
    if (ok) rc = SQLITE_OK;
    return ok;
  }
  writer_statements& st;
  sqlite3* db;
  int rc = SQLITE_OK;
};

}  // namespace

runtime::outcome apply_write(writer_statements& st, ledger& book, const runtime::value& args,
                             double now, int& rc, sqlite3* db) {
  sqlite_rows rows(st, db);
  runtime::outcome o = apply_store_write(rows, book, args, now);
  rc = rows.rc;
  return o;
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

// Deletes up to k_expiry_chunk expired rows in one implicit transaction and
// gives their bytes back to their namespaces once it has committed.
std::int64_t expire_some(writer_statements& st, sqlite3* db, double now, std::mutex& mu,
                         std::map<std::string, std::int64_t, std::less<>>& usage) {
  std::vector<std::pair<std::string, std::int64_t>> freed;
  st.expire.reset().real(1, now).integer(2, k_expiry_chunk);
  int rc;
  while ((rc = st.expire.step()) == SQLITE_ROW)
    freed.emplace_back(st.expire.column_blob(0), st.expire.column_integer(1));
  st.expire.reset();  // the statement's transaction commits here
  if (rc != SQLITE_DONE) {
    runtime::logger().warn("store: expiry failed: {}", sqlite3_errmsg(db));
    return 0;
  }
  std::int64_t total = 0;
  std::lock_guard lock(mu);
  for (const auto& [ns, bytes] : freed) {
    usage[ns] -= bytes;
    total += bytes;
  }
  return total;
}

}  // namespace luad::dispatcher
