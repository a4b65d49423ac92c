// The storage writer's ledger of namespace byte totals (see ledger.hpp).
#include "dispatcher/ledger.hpp"

namespace luad::dispatcher {

bool ledger::fits(std::string_view ns, std::int64_t delta, std::uint64_t& quota) const {
  auto q = quotas_.by_namespace.find(ns);
  quota = q != quotas_.by_namespace.end() ? q->second : quotas_.default_bytes;
  if (delta <= 0 || quota == 0) return true;
  return static_cast<std::uint64_t>(used(ns) + delta) <= quota;
}

std::int64_t ledger::used(std::string_view ns) const {
  auto u = usage_.find(ns);
  return u != usage_.end() ? u->second : 0;
}

void ledger::add(std::string_view ns, std::int64_t delta) {
  if (delta == 0) return;
  auto u = usage_.find(ns);
  if (u == usage_.end()) u = usage_.emplace(std::string(ns), 0).first;
  u->second += delta;
  changes_.emplace_back(u->first, delta);
}

std::int64_t ledger::net() const {
  std::int64_t sum = 0;
  for (const auto& change : changes_) sum += change.second;
  return sum;
}

void ledger::undo() {
  for (auto it = changes_.rbegin(); it != changes_.rend(); ++it) usage_[it->first] -= it->second;
  changes_.clear();
  written_ = 0;
}

runtime::outcome over_quota(std::string_view op, std::string_view ns, std::int64_t used,
                            std::int64_t delta, std::uint64_t quota) {
  return runtime::outcome::failure({runtime::error_kind::limit,
                                    "store." + std::string(op) + ": namespace '" + std::string(ns) +
                                        "' would hold " + std::to_string(used + delta) +
                                        " bytes, past its quota of " + std::to_string(quota) +
                                        " (store_bytes)",
                                    false,
                                    {}});
}

}  // namespace luad::dispatcher
