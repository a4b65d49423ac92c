// The message codec: copies a Lua value out of one lua_State into a compact byte
// string and back into another state (shared subtables and cycles preserved).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "runtime/lua.hpp"
#include "runtime/value.hpp"

namespace luad::runtime {

class string_cache;

/// Deepest table nesting a message may have (the outermost table is level 1).
inline constexpr int max_message_depth = 200;

/// Appends the encoding of the value at `idx` to `out` (which is not cleared:
/// callers reuse one buffer and clear it themselves). Copies nil, booleans,
/// integers and floats (kept apart), binary-safe strings, light userdata (the
/// pointer value: pids and json.null) and tables with any such keys and values,
/// without metatables; a table reached twice is encoded once, so sharing and
/// cycles survive. Refuses functions, full userdata, threads, nesting deeper
/// than `max_message_depth` and encodings longer than `max_bytes`: returns false
/// with a reason in `why` ("cannot send a function (at .handlers[2])"), leaving
/// `out` and the Lua stack as they were. Never raises. Thread-safe for distinct
/// states.
bool encode_message(lua_State* L, int idx, std::string& out, std::string& why,
                    std::size_t max_bytes);

/// Appends the encoding of a plain value (what the runtime itself sends, e.g.
/// the payload of an EXIT or DOWN message); decodes with push_message.
void encode_value(const value& v, std::string& out);

/// The value encode_value encoded in `bytes` (validated first: the bytes may
/// come from a database file); nullopt for anything else, or for an encoding
/// of what a value cannot hold (shared tables, pointers, mixed tables).
std::optional<value> decode_value(std::string_view bytes);

/// Appends one encoded argument to spawn_options::packed_args (size, then bytes).
void append_packed_arg(std::string& packed, std::string_view encoded);

/// True when `bytes` is a complete, well-formed encoding that push_message may
/// read safely (every length and count in bounds, known tags, back-references
/// to tables already begun, nesting within max_message_depth). For bytes that
/// come from outside the process: the store's database file.
bool valid_message(std::string_view bytes) noexcept;

/// Reads an encoding of one integer; false for anything else.
bool decode_integer(std::string_view bytes, std::int64_t& out) noexcept;

/// Pushes the value encoded in `bytes`, which must be exactly one output of
/// encode_message from this process (pointers are copied as they are; the bytes
/// are trusted, not validated). May raise only Lua's memory error (or a stack
/// overflow error when the Lua stack cannot grow) and holds no C++ object with a
/// destructor while it can. With `cache` (the receiving process's), its short
/// strings come from and go to that cache instead of being interned anew.
void push_message(lua_State* L, std::string_view bytes, string_cache* cache = nullptr);

}  // namespace luad::runtime
