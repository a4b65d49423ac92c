// JSON text <-> runtime::value: a strict RFC 8259 codec with deterministic output.
// The Lua module `json` (json_module in modules/modules.hpp) is built on it.
#pragma once

#include <string>
#include <string_view>

#include "runtime/value.hpp"

namespace luad::modules {

/// The deepest nesting of arrays and objects the codec reads or writes.
inline constexpr int json_max_depth = 200;

/// Writes `v` as compact JSON into `out` (replacing its contents). Deterministic:
/// map keys sorted bytewise; integers as integers; floats in their shortest
/// round-trip form, always with a '.' or exponent ("1.0"); nil as null. Returns
/// false with a reason in `why` for NaN or infinity, strings that are not valid
/// UTF-8, duplicate map keys, or nesting deeper than json_max_depth.
bool json_encode(const runtime::value& v, std::string& out, std::string& why);

/// Parses one JSON text (strict RFC 8259, UTF-8, surrounding whitespace only)
/// into `out`. Integers without fraction or exponent that fit int64 become
/// integers, other numbers doubles; null becomes nil. Duplicate object keys,
/// lone surrogates and nesting deeper than json_max_depth are refused. On
/// failure returns false and `why` reads "line L column C: what was wrong".
bool json_decode(std::string_view text, runtime::value& out, std::string& why);

}  // namespace luad::modules
