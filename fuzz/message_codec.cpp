// Fuzzes the message codec's decoder: arbitrary bytes checked by
// runtime::valid_message (the guard for bytes from outside a process, e.g.
// the store's file) and, when it accepts them, decoded by push_message into a
// fresh Lua state. What it decodes must encode again into a valid message.
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "runtime/message_codec.hpp"

namespace {

struct input {
  std::string_view bytes;
};

int decode(lua_State* L) {
  const auto* in = static_cast<const input*>(lua_touserdata(L, 1));
  luad::runtime::push_message(L, in->bytes);
  return 1;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  input in{std::string_view(reinterpret_cast<const char*>(data), size)};
  if (!luad::runtime::valid_message(in.bytes)) return 0;
  lua_State* L = luaL_newstate();
  lua_pushcfunction(L, decode);
  lua_pushlightuserdata(L, &in);
  if (lua_pcall(L, 1, 1, 0) == LUA_OK) {
    std::string out, why;
    // Light userdata (pids, json.null) copy as they are; everything else
    // that decodes must encode again, and validly.
    if (!luad::runtime::encode_message(L, -1, out, why, std::size_t{1} << 30)) std::abort();
    if (!luad::runtime::valid_message(out)) std::abort();
  }
  lua_close(L);
  return 0;
}
