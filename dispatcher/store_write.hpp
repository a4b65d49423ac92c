// What a store write does, whatever database keeps the rows: the rules of
// set, delete, incr and cas, TTLs, and the namespace quota, over an interface
// to the rows of one open transaction. SQLite implements that interface with
// its statements (store_ops.cpp); PostgreSQL with the rows it read ahead for
// a batch (postgres_store.cpp). One copy of the rules keeps both backends the
// same store.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "dispatcher/ledger.hpp"
#include "runtime/value.hpp"

namespace luad::dispatcher {

/// A row as the quota sees it: its bytes (key plus value; 0 = no row, live or
/// expired) and whether it is live (not expired).
struct stored_row {
  std::int64_t bytes = 0;
  bool live = false;
};

/// The rows of the transaction a write runs in. A call that returns false
/// met a database failure; failure() then says what it was.
class store_rows {
 public:
  virtual bool find(std::string_view ns, std::string_view key, double now, stored_row& row) = 0;
  /// The live value of ns/key (nullopt: none, or expired).
  virtual bool live_value(std::string_view ns, std::string_view key, double now,
                          std::optional<std::string>& value) = 0;
  /// Inserts or replaces ns/key; `expires` in unix seconds, nullopt = never.
  virtual bool put(std::string_view ns, std::string_view key, std::string_view value,
                   std::optional<double> expires) = 0;
  virtual bool erase(std::string_view ns, std::string_view key) = 0;
  /// The error of the last failed call, `during` naming the operation.
  virtual runtime::error failure(const char* during) = 0;

 protected:
  ~store_rows() = default;
};

/// Applies the write `args` (a store_op map: set, delete, incr, cas; see
/// dispatcher/storage.hpp) to `rows` under the quotas `book` keeps. Returns
/// its result, or an error for this write alone (nothing changed): `invalid`,
/// `limit`, or the database failure.
runtime::outcome apply_store_write(store_rows& rows, ledger& book, const runtime::value& args,
                                   double now);

}  // namespace luad::dispatcher
