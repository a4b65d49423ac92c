// UTF-8 well-formedness, as RFC 3629 and Unicode define it: no overlong
// forms, no surrogates (U+D800..U+DFFF), nothing past U+10FFFF. Used wherever
// bytes from a script become JSON text (the protocol, the JSON log format).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace luad::runtime {

/// True when `s` is well-formed UTF-8. Runs of ASCII are checked eight bytes
/// at a time, so text costs about one load per eight bytes.
bool valid_utf8(std::string_view s) noexcept;

/// Length of the well-formed sequence starting at `s[i]` (1..4), or 0 when
/// the byte there does not start one.
std::size_t utf8_sequence(std::string_view s, std::size_t i) noexcept;

/// `s` with every byte that is not part of a well-formed sequence replaced by
/// U+FFFD (so the result is valid UTF-8 and says where bytes were lost).
std::string utf8_repaired(std::string_view s);

/// At most `max` bytes of `s`, not splitting a UTF-8 sequence (a cut that
/// would fall inside one moves back to its start).
std::string_view utf8_prefix(std::string_view s, std::size_t max) noexcept;

}  // namespace luad::runtime
