// result<T>: the one shape of an expected failure in luad's C++ code — a value
// or a structured runtime::error, never an out-parameter or a char buffer.
#pragma once

#include <utility>
#include <variant>

#include "runtime/value.hpp"

namespace luad::runtime {

/// A value of type T, or the error that prevented it. Test with `if (r)`,
/// read with `*r` / `r->`, and the failure with `r.error()`.
template <class T>
class [[nodiscard]] result {
 public:
  result(T v) : data_(std::in_place_index<0>, std::move(v)) {}               // NOLINT
  result(runtime::error e) : data_(std::in_place_index<1>, std::move(e)) {}  // NOLINT

  explicit operator bool() const { return data_.index() == 0; }
  bool ok() const { return data_.index() == 0; }
  T& operator*() { return std::get<0>(data_); }
  const T& operator*() const { return std::get<0>(data_); }
  T* operator->() { return &std::get<0>(data_); }
  const T* operator->() const { return &std::get<0>(data_); }
  const runtime::error& error() const { return std::get<1>(data_); }
  runtime::error& error() { return std::get<1>(data_); }

 private:
  std::variant<T, runtime::error> data_;
};

/// The success of an operation that produces nothing.
struct done {};

/// `result<done>`: success or an error.
using status = result<done>;

/// A failure of kind `kind` with `message` (not retryable).
inline runtime::error fail(error_kind kind, std::string message, bool retryable = false) {
  return runtime::error{kind, std::move(message), retryable, {}};
}

}  // namespace luad::runtime
