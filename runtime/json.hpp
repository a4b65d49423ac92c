// JSON text <-> runtime::value: a strict RFC 8259 codec with deterministic output
// (sorted keys), the one JSON writer of luad's own output (logs, `luad run`, types).
#pragma once

#include <string>
#include <string_view>

#include "runtime/result.hpp"
#include "runtime/value.hpp"

namespace luad::runtime {

/// The deepest nesting of arrays and objects the codec reads or writes.
inline constexpr int json_max_depth = 200;

/// `v` as compact JSON. Deterministic: map keys sorted bytewise; integers as
/// integers; floats in their shortest round-trip form, always with a '.' or
/// exponent ("1.0"); nil as null. Fails with kind `invalid` for NaN or
/// infinity, strings that are not valid UTF-8, duplicate map keys, or nesting
/// deeper than json_max_depth. Thread-safe (no shared state).
result<std::string> json_encode(const value& v);

/// Parses one JSON text (strict RFC 8259, UTF-8, surrounding whitespace only).
/// Integers without fraction or exponent that fit int64 become integers, other
/// numbers doubles; null becomes nil. Duplicate object keys, lone surrogates
/// and nesting deeper than json_max_depth are refused: kind `invalid`, message
/// "line L column C: what was wrong". Thread-safe (no shared state).
result<value> json_decode(std::string_view text);

}  // namespace luad::runtime
