// A check of compiled chunks against a Lua 5.4.4 bug no sandbox rule can
// reach: 'getobjname' (the naming of a variable in an error message) recurses
// once per link of a chain of table reads, scanning the code at each level.
#pragma once

#include <cstddef>

namespace luad::runtime {

/// The longest chain of table reads through temporaries (`a.x.x.x...`) a chunk
/// may hold. Lua 5.4.4's getobjname (fixed upstream in 5.4.7, commit 7923dbbf)
/// recurses once per link, scanning the function's code at each: a 40,000-link
/// chain takes 7 s to name in an error message and a longer one overflows the C
/// stack. Real code stays far below this.
inline constexpr int max_read_chain = 100;

/// Checks the dump of a chunk made by this build's lua_dump (not any binary:
/// the dump must be well formed). Returns nullptr when every function's read
/// chains are at most `max_read_chain` long, else a static error message.
/// Allocates nothing; thread-safe.
const char* check_read_chains(const char* dump, std::size_t size) noexcept;

}  // namespace luad::runtime
