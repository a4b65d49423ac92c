// Plain, serialisable values and structured errors: what commands carry, what
// completions return and what a process leaves behind when it exits.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace luad::runtime {

/// A tree of plain data: nil, boolean, integer, number, string, array, map.
/// Maps keep insertion order; encoders that need determinism sort the keys.
/// Values never hold Lua references, so they may cross threads and be journaled.
struct value {
  using array = std::vector<value>;
  using map = std::vector<std::pair<std::string, value>>;
  std::variant<std::monostate, bool, std::int64_t, double, std::string, array, map> data;

  value() = default;
  value(bool b) : data(b) {}                      // NOLINT(google-explicit-constructor)
  value(std::int64_t i) : data(i) {}              // NOLINT(google-explicit-constructor)
  value(int i) : data(std::int64_t{i}) {}         // NOLINT(google-explicit-constructor)
  value(double d) : data(d) {}                    // NOLINT(google-explicit-constructor)
  value(std::string s) : data(std::move(s)) {}    // NOLINT(google-explicit-constructor)
  value(const char* s) : data(std::string(s)) {}  // NOLINT(google-explicit-constructor)
  value(array a) : data(std::move(a)) {}          // NOLINT(google-explicit-constructor)
  value(map m) : data(std::move(m)) {}            // NOLINT(google-explicit-constructor)

  bool is_nil() const { return std::holds_alternative<std::monostate>(data); }
  template <class T>
  const T* get() const {
    return std::get_if<T>(&data);
  }
  /// In a map, the first entry named `key`; nullptr if absent or not a map.
  const value* find(std::string_view key) const {
    if (const map* m = get<map>()) {
      for (const auto& [k, v] : *m)
        if (k == key) return &v;
    }
    return nullptr;
  }
  friend bool operator==(const value&, const value&) = default;
};

/// What went wrong, as a script sees it in `err.kind`.
enum class error_kind : std::uint8_t {
  invalid,            ///< bad input: malformed data, wrong value, bad script path
  not_found,          ///< the thing asked for does not exist
  permission_denied,  ///< the process may not do this
  timeout,            ///< a deadline passed first
  unavailable,        ///< a dependency is down or refused; usually retryable
  canceled,           ///< the operation was canceled before it completed
  limit,              ///< a memory, instruction, size or count limit was hit
  internal,           ///< a bug or broken invariant in luad itself
  syntax,             ///< a script failed to compile
  runtime,            ///< a script raised an error that was not a structured error
};

/// The lower-case name scripts see (`"permission_denied"`), and its inverse.
std::string_view kind_name(error_kind kind);
std::optional<error_kind> kind_from_name(std::string_view name);

/// A structured error: `kind`, `message`, `retryable`, and, for errors that end
/// a process, the Lua traceback at the point of failure.
struct error {
  error_kind kind = error_kind::internal;
  std::string message;
  bool retryable = false;
  std::string traceback;

  friend bool operator==(const error&, const error&) = default;
};

/// How a command completed: a value, or an error. The error is boxed: errors
/// are rare and every process keeps one outcome slot, so it stays small.
struct outcome {
  value val;
  std::unique_ptr<error> err;

  static outcome success(value v) { return {std::move(v), nullptr}; }
  static outcome failure(error e) { return {{}, std::make_unique<error>(std::move(e))}; }
};

}  // namespace luad::runtime
