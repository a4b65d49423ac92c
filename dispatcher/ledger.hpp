// The storage writer's ledger of namespace byte totals: checks a write
// against its namespace's quota and remembers what a batch changed, so that a
// batch whose transaction rolls back can be undone.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "dispatcher/store_backend.hpp"
#include "runtime/value.hpp"

namespace luad::dispatcher {

/// The writer's view of the namespaces' byte totals during one batch. Writer
/// thread only, with the storage's usage lock held.
class ledger {
 public:
  ledger(std::map<std::string, std::int64_t, std::less<>>& usage, const store_quotas& q)
      : usage_(usage), quotas_(q) {}

  /// Whether `ns` may grow by `delta` bytes (shrinking always may); `quota`
  /// gets the namespace's quota (0 = none).
  bool fits(std::string_view ns, std::int64_t delta, std::uint64_t& quota) const;
  /// Bytes `ns` holds now, this batch's changes included.
  std::int64_t used(std::string_view ns) const;
  /// Records that `ns` grew (or shrank) by `delta`.
  void add(std::string_view ns, std::int64_t delta);
  /// Records that a write put `bytes` of key and value (for the metrics).
  void wrote(std::size_t bytes) { written_ += bytes; }
  /// Bytes put by this batch's writes so far.
  std::uint64_t written() const { return written_; }
  /// How much this batch's adds grew (or shrank) the namespaces together.
  std::int64_t net() const;
  /// Undoes every add of this batch (its transaction rolled back).
  void undo();
  /// Forgets this batch's adds (its transaction committed).
  void committed() {
    changes_.clear();
    written_ = 0;
  }

 private:
  std::map<std::string, std::int64_t, std::less<>>& usage_;
  const store_quotas& quotas_;
  std::vector<std::pair<std::string, std::int64_t>> changes_;
  std::uint64_t written_ = 0;
};

/// The `limit` failure of a write `op` that would take `ns` from `used` bytes
/// past its `quota` by growing it `delta`.
runtime::outcome over_quota(std::string_view op, std::string_view ns, std::int64_t used,
                            std::int64_t delta, std::uint64_t quota);

}  // namespace luad::dispatcher
