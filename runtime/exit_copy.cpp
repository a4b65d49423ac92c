// Copying a process's exit out of its Lua state within bounds (exit_copy.hpp).
#include "runtime/exit_copy.hpp"

#include <new>
#include <string>
#include <string_view>

#include "runtime/lua_value.hpp"
#include "runtime/utf8.hpp"

namespace luad::runtime {

namespace {

// The copy's hard cap when a process has no exit_bytes limit.
constexpr std::size_t k_unbounded_copy = std::size_t{256} << 20;

void make_limit(exit_info& info, const char* why) noexcept {
  info.reason = exit_reason::limit;
  info.results.clear();
  info.err.kind = error_kind::limit;
  info.err.retryable = false;
  info.err.traceback.clear();
  try {
    info.err.message = why;
  } catch (...) {
    info.err.message.clear();  // (cannot throw: clearing never allocates)
  }
}

// Runs on the failed thread itself, under lua_pcall: level 1 is where the
// error was raised (level 0 is this function).
int traceback_protected(lua_State* L) {
  luaL_traceback(L, L, nullptr, 1);
  return 1;
}

// Replaces `s` by its first exit_text_bytes and a marker, in a fresh string,
// so that the long one's memory goes back.
void bound(std::string& s) noexcept {
  if (s.size() <= exit_text_bytes) return;
  try {
    std::string_view kept = utf8_prefix(s, exit_text_bytes);
    std::string shorter;
    shorter.reserve(kept.size() + 16);
    shorter.append(kept).append("...(truncated)");
    s.swap(shorter);
  } catch (...) {
    s.clear();
    s.shrink_to_fit();
  }
}

}  // namespace

void copy_exit_results(lua_State* L, int nres, std::size_t max_bytes, exit_info& info) noexcept {
  std::size_t budget = max_bytes ? max_bytes : k_unbounded_copy;
  try {
    int base = lua_gettop(L) - nres + 1;
    std::string why;
    info.results.reserve(static_cast<std::size_t>(nres));
    for (int i = 0; i < nres; ++i) {
      value v;
      switch (copy_value(L, base + i, v, why, budget)) {
        case copy_status::ok: info.results.push_back(std::move(v)); continue;
        case copy_status::refused:
          info.reason = exit_reason::error;
          info.results.clear();
          info.err = {
              error_kind::invalid,
              "return value #" + std::to_string(i + 1) + " cannot leave the process: " + why,
              false,
              {}};
          return;
        case copy_status::too_large:
          info.results.clear();
          make_limit(info, "");
          info.err.message = "return values too large: their copy would pass the exit limit of " +
                             std::to_string(max_bytes ? max_bytes : k_unbounded_copy) +
                             " bytes (limits.exit_size; a table returned twice counts twice)";
          return;
        case copy_status::out_of_memory:
          make_limit(info, "out of memory copying the return values");
          return;
      }
    }
  } catch (const std::bad_alloc&) {
    make_limit(info, "out of memory copying the return values");
  }
}

void copy_exit_error(lua_State* L, exit_info& info) noexcept {
  bool have_error = false;
  try {
    info.err = to_error(L, -1);
    have_error = true;
    if (lua_checkstack(L, 2)) {
      lua_pushcfunction(L, traceback_protected);  // a light C function: no allocation
      if (lua_pcall(L, 0, 1, 0) == LUA_OK) {
        std::size_t len = 0;
        const char* tb = lua_tolstring(L, -1, &len);
        info.err.traceback.assign(utf8_prefix(std::string_view(tb, len), exit_text_bytes));
        lua_pop(L, 1);
        return;
      }
      lua_pop(L, 1);  // the memory error (a preallocated string)
    }
  } catch (const std::bad_alloc&) {
  }
  // Lua's heap is at its limit (or C++ memory ran out): no traceback.
  std::string message = std::move(info.err.message);
  make_limit(info, have_error ? "memory limit exceeded building the exit traceback"
                              : "out of memory reading the exit error");
  if (have_error) {
    try {
      info.err.message += " of: ";
      info.err.message += utf8_prefix(message, exit_text_bytes);
    } catch (...) {
    }
  }
}

void bound_exit_texts(exit_info& info) noexcept {
  bound(info.err.message);
  bound(info.err.traceback);
}

}  // namespace luad::runtime
