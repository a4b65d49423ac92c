// The Lua module `json` over the codec of runtime/json.hpp: encode/decode
// through runtime::value, with json.null (a NULL light userdata) standing for
// null so that array positions survive a round trip.
#include <algorithm>
#include <climits>
#include <string>
#include <string_view>

#include "modules/modules.hpp"
#include "runtime/json.hpp"
#include "runtime/lua_value.hpp"

namespace luad::modules {

namespace {

using runtime::value;

// Like runtime::push_value, but nil is json.null at every level.
void push_json(lua_State* L, const value& v) {
  luaL_checkstack(L, 3, "value nested too deeply");
  if (v.is_nil()) {
    lua_pushlightuserdata(L, nullptr);
  } else if (const auto* a = v.get<value::array>()) {
    lua_createtable(L, static_cast<int>(std::min<std::size_t>(a->size(), INT_MAX)), 0);
    lua_Integer i = 0;
    for (const value& item : *a) {
      push_json(L, item);
      lua_rawseti(L, -2, ++i);
    }
  } else if (const auto* m = v.get<value::map>()) {
    lua_createtable(L, 0, static_cast<int>(std::min<std::size_t>(m->size(), INT_MAX)));
    for (const auto& [key, item] : *m) {
      lua_pushlstring(L, key.data(), key.size());
      push_json(L, item);
      lua_rawset(L, -3);
    }
  } else {
    runtime::push_value(L, v);
  }
}

int push_text(lua_State* L, const std::string& s) {
  lua_pushlstring(L, s.data(), s.size());
  return 1;
}

int push_decoded(lua_State* L, const value& v) {
  push_json(L, v);
  return 1;
}

int push_invalid(lua_State* L, std::string why) {
  return runtime::push_failure(
      L, runtime::error{runtime::error_kind::invalid, std::move(why), false, {}});
}

using runtime::out_of_memory;

// The C++ half of encode: every C++ object lives and dies in here.
int encode_to_stack(lua_State* L) noexcept {
  try {
    value v;
    std::string why;
    if (!runtime::to_value(L, 1, v, why)) return push_invalid(L, std::move(why));
    runtime::result<std::string> text = runtime::json_encode(v);
    if (!text) return runtime::push_failure(L, text.error());
    return runtime::push_protected<std::string, push_text>(L, *text);
  } catch (...) {  // bad_alloc, in practice
    return out_of_memory;
  }
}

int decode_to_stack(lua_State* L, std::string_view text) noexcept {
  try {
    runtime::result<value> v = runtime::json_decode(text);
    if (!v) return runtime::push_failure(L, v.error());
    return runtime::push_protected<value, push_decoded>(L, *v);
  } catch (...) {  // bad_alloc, in practice
    return out_of_memory;
  }
}

// Raises for a failed *_to_stack, now that its C++ objects are gone.
int raise(lua_State* L, int status) {
  if (status == out_of_memory) return luaL_error(L, "not enough memory");
  return lua_error(L);
}

int json_encode_lua(lua_State* L) {
  luaL_checkany(L, 1);
  lua_settop(L, 1);
  int n = encode_to_stack(L);
  return n >= 0 ? n : raise(L, n);
}

int json_decode_lua(lua_State* L) {
  std::size_t len = 0;
  const char* text = luaL_checklstring(L, 1, &len);
  lua_settop(L, 1);
  int n = decode_to_stack(L, std::string_view(text, len));
  return n >= 0 ? n : raise(L, n);
}

void json_constants(lua_State* L, int table) {
  table = lua_absindex(L, table);
  lua_pushlightuserdata(L, nullptr);
  lua_setfield(L, table, "null");
}

runtime::module_exports build_json() {
  return {{{"encode", json_encode_lua}, {"decode", json_decode_lua}}, {}};
}

constexpr runtime::param_type encode_params[] = {{"value", "any"}};
constexpr runtime::param_type encode_returns[] = {{"text", "string?"}, {"err", "luad.error?"}};
constexpr runtime::param_type decode_params[] = {{"text", "string"}};
constexpr runtime::param_type decode_returns[] = {{"value", "any"}, {"err", "luad.error?"}};

constexpr runtime::function_type json_manifest[] = {
    {"encode", encode_params, encode_returns,
     "Encodes a value as compact JSON with sorted keys; json.null encodes as null."},
    {"decode", decode_params, decode_returns,
     "Decodes strict JSON text; null decodes as json.null."},
};

}  // namespace

const runtime::module_def json_module{
    "json",
    "JSON encoding and decoding (strict RFC 8259, deterministic output)",
    runtime::deterministic | runtime::workflow,
    json_manifest,
    build_json,
    json_constants,
};

}  // namespace luad::modules
