// The `store` module: a durable key-value store per namespace (the storage
// dispatcher, dispatcher/storage.cpp). A process uses the namespace of its
// first `store:NAME` permission and cannot reach any other. Values are any
// message-copyable Lua value (the message codec); writes return only once
// durable.
#include <lua.hpp>

#include <cmath>
#include <cstdio>
#include <string>

#include "dispatcher/storage.hpp"
#include "modules/modules.hpp"
#include "runtime/lua_value.hpp"
#include "runtime/message_codec.hpp"
#include "runtime/permissions.hpp"
#include "runtime/process.hpp"
#include "runtime/result.hpp"
#include "runtime/yield.hpp"

namespace luad::modules {

namespace {

using dispatcher::storage;
using runtime::error;
using runtime::error_kind;
using runtime::process;
using runtime::value;

enum class op : std::uint8_t { get, set, erase, incr, cas, list };

const char* op_name(op o) {
  switch (o) {
    case op::get: return "get";
    case op::set: return "set";
    case op::erase: return "delete";
    case op::incr: return "incr";
    case op::cas: return "cas";
    case op::list: return "list";
  }
  return "?";
}

// A pending store operation: the command map, and which op it is (for the result).
class store_yield final : public runtime::pooled_yield<store_yield, runtime::command_id::store_op> {
 public:
  static constexpr const char* type_name = "store.op";
  op kind = op::get;
  value operation;  // the storage.op map

  value args() { return std::move(operation); }
  int handle_result(lua_State* L, const value& v, const error* err) override {
    if (err) {
      lua_pushnil(L);
      runtime::push_error(L, *err);
      return 2;
    }
    switch (kind) {
      case op::get:
        if (const auto* bytes = v.get<std::string>())
          runtime::push_message(L, *bytes);  // validated by the dispatcher
        else
          lua_pushnil(L);
        return 1;
      case op::set: lua_pushboolean(L, 1); return 1;
      case op::erase:
      case op::cas: {
        const bool* b = v.get<bool>();
        lua_pushboolean(L, b && *b);
        return 1;
      }
      case op::incr: {
        const std::int64_t* n = v.get<std::int64_t>();
        lua_pushinteger(L, n ? *n : 0);
        return 1;
      }
      case op::list: return push_list(L, v);
    }
    return 0;
  }

 private:
  // items = {{key = k, value = v}, ...}, then the cursor (nil at the end).
  static int push_list(lua_State* L, const value& v) {
    const value* found = v.find("items");
    const value::array* items = found ? found->get<value::array>() : nullptr;
    found = v.find("cursor");
    const std::string* cursor = found ? found->get<std::string>() : nullptr;
    int n = items ? static_cast<int>(items->size()) : 0;
    lua_createtable(L, n, 0);
    for (int i = 0; i < n; ++i) {
      const auto* pair = (*items)[static_cast<std::size_t>(i)].get<value::array>();
      const std::string* key = pair && pair->size() == 2 ? (*pair)[0].get<std::string>() : nullptr;
      const std::string* bytes = key ? (*pair)[1].get<std::string>() : nullptr;
      if (!bytes) continue;
      lua_createtable(L, 0, 2);
      lua_pushlstring(L, key->data(), key->size());
      lua_setfield(L, -2, "key");
      runtime::push_message(L, *bytes);
      lua_setfield(L, -2, "value");
      lua_rawseti(L, -2, i + 1);
    }
    if (cursor)
      lua_pushlstring(L, cursor->data(), cursor->size());
    else
      lua_pushnil(L);
    return 2;
  }
};

// One call's inputs, read from the Lua stack by the binding (raising on misuse)
// before anything C++ with a destructor exists.
struct request {
  op kind;
  const char* key = nullptr;
  std::size_t key_len = 0;
  int value_at = 0;     // stack index of the value (set, cas new), 0 = none
  int expected_at = 0;  // cas: stack index of the expected value
  double ttl = -1;      // < 0: none
  lua_Integer by = 1;
  const char* prefix = "";
  std::size_t prefix_len = 0;
  const char* after = nullptr;
  std::size_t after_len = 0;
  lua_Integer limit = 100;
};

// "store.get: out of memory", or without the prefix when even that cannot be made.
runtime::error out_of_memory(op kind) noexcept {
  try {
    return runtime::fail(error_kind::limit,
                         std::string("store.") + op_name(kind) + ": out of memory");
  } catch (...) {
    return runtime::fail(error_kind::limit, "out of memory");  // (fits without allocating)
  }
}

// Builds the command for `r` into the pooled yield object, or says why not.
// Never raises; all C++ objects live in the yield object or die here.
runtime::status prepare(lua_State* L, const request& r, store_yield& y) noexcept {
  try {
    process* self = process::of(L);
    const auto& perms = self->context().permissions;
    auto ns = runtime::default_store_namespace(perms);
    if (!ns) {
      return runtime::fail(error_kind::permission_denied,
                           std::string("store.") + op_name(r.kind) +
                               ": this process has no store namespace (grant store:NAME)");
    }
    value::map m;
    m.emplace_back("op", op_name(r.kind));
    m.emplace_back("ns", std::move(*ns));
    if (r.key) m.emplace_back("key", std::string(r.key, r.key_len));
    std::size_t max_bytes = self->context().limits.message_bytes;
    std::string bytes, reason;
    runtime::error refused;
    auto encode = [&](int at, const char* name) {
      bytes.clear();
      if (!runtime::encode_message(L, at, bytes, reason, max_bytes)) {
        refused =
            runtime::fail(reason.find("larger than") != std::string::npos ? error_kind::limit
                                                                          : error_kind::invalid,
                          std::string("store.") + op_name(r.kind) + ": the " + name +
                              " cannot be stored: " + reason);
        return false;
      }
      m.emplace_back(name, std::move(bytes));
      return true;
    };
    if (r.value_at && !encode(r.value_at, "value")) return refused;
    if (r.expected_at && !encode(r.expected_at, "expected")) return refused;
    if (r.ttl >= 0) m.emplace_back("ttl", r.ttl);
    if (r.kind == op::incr) m.emplace_back("by", static_cast<std::int64_t>(r.by));
    if (r.kind == op::list) {
      m.emplace_back("prefix", std::string(r.prefix, r.prefix_len));
      if (r.after) m.emplace_back("after", std::string(r.after, r.after_len));
      m.emplace_back("limit", static_cast<std::int64_t>(r.limit));
    }
    y.kind = r.kind;
    y.operation = value(std::move(m));
    return runtime::done{};
  } catch (const std::exception&) {
    return out_of_memory(r.kind);
  }
}

// The common tail of every binding: arguments are checked; send the command.
int start(lua_State* L, const request& r) {
  store_yield* y = store_yield::acquire(L);
  int n = 0;
  {
    runtime::status ok = prepare(L, r, *y);
    if (!ok) {
      lua_pop(L, 1);  // the yield object acquire pushed
      y->release();
      n = runtime::push_failure(L, ok.error());
    }
  }
  if (n != 0) return n < 0 ? lua_error(L) : n;
  return -1;
}

void check_key(lua_State* L, request& r) {
  r.key = luaL_checklstring(L, 1, &r.key_len);
  luaL_argcheck(L, r.key_len > 0, 1, "empty key");
  luaL_argcheck(L, r.key_len <= storage::max_key, 1, "key longer than 1024 bytes");
}

// Scalars only: cas compares encodings, and two equal tables may encode apart.
void check_simple(lua_State* L, int at) {
  int t = lua_type(L, at);
  luaL_argexpected(
      L,
      t == LUA_TNONE || t == LUA_TNIL || t == LUA_TBOOLEAN || t == LUA_TNUMBER || t == LUA_TSTRING,
      at, "nil, boolean, number or string");
}

int store_get(lua_State* L) {
  request r{op::get};
  check_key(L, r);
  return start(L, r);
}

int store_set(lua_State* L) {
  request r{op::set};
  check_key(L, r);
  luaL_argcheck(L, !lua_isnoneornil(L, 2), 2, "a value (use store.delete to remove a key)");
  r.value_at = 2;
  if (!lua_isnoneornil(L, 3)) {
    luaL_checktype(L, 3, LUA_TTABLE);
    if (lua_getfield(L, 3, "ttl") != LUA_TNIL) {
      lua_Number ttl = luaL_checknumber(L, -1);
      luaL_argcheck(L, ttl > 0 && std::isfinite(ttl), 3,
                    "ttl must be a positive number of seconds");
      r.ttl = static_cast<double>(ttl);
    }
    lua_pop(L, 1);
  }
  return start(L, r);
}

int store_delete(lua_State* L) {
  request r{op::erase};
  check_key(L, r);
  return start(L, r);
}

int store_incr(lua_State* L) {
  request r{op::incr};
  check_key(L, r);
  r.by = luaL_optinteger(L, 2, 1);
  return start(L, r);
}

int store_cas(lua_State* L) {
  request r{op::cas};
  check_key(L, r);
  check_simple(L, 2);
  if (!lua_isnoneornil(L, 2)) r.expected_at = 2;
  if (!lua_isnoneornil(L, 3)) r.value_at = 3;
  return start(L, r);
}

int store_list(lua_State* L) {
  request r{op::list};
  if (!lua_isnoneornil(L, 1)) r.prefix = luaL_checklstring(L, 1, &r.prefix_len);
  luaL_argcheck(L, r.prefix_len <= storage::max_key, 1, "prefix longer than 1024 bytes");
  if (!lua_isnoneornil(L, 2)) {
    luaL_checktype(L, 2, LUA_TTABLE);
    if (lua_getfield(L, 2, "limit") != LUA_TNIL) {
      r.limit = luaL_checkinteger(L, -1);
      luaL_argcheck(L, r.limit >= 1 && r.limit <= storage::max_list, 2, "limit must be 1..1000");
    }
    if (lua_getfield(L, 2, "after") != LUA_TNIL) r.after = luaL_checklstring(L, -1, &r.after_len);
    lua_pop(L, 2);  // `after` stays reachable from the table while we run
  }
  return start(L, r);
}

constexpr runtime::param_type key_param[] = {{"key", "string"}};
constexpr runtime::param_type get_returns[] = {{"value", "any"}, {"err", "luad.error?"}};
constexpr runtime::param_type set_params[] = {
    {"key", "string"}, {"value", "any"}, {"opts", "{ttl: number?}?"}};
constexpr runtime::param_type ok_returns[] = {{"ok", "boolean?"}, {"err", "luad.error?"}};
constexpr runtime::param_type incr_params[] = {{"key", "string"}, {"by", "integer?"}};
constexpr runtime::param_type incr_returns[] = {{"value", "integer?"}, {"err", "luad.error?"}};
constexpr runtime::param_type cas_params[] = {
    {"key", "string"}, {"expected", "boolean|number|string|nil"}, {"new", "any"}};
constexpr runtime::param_type list_params[] = {{"prefix", "string?"},
                                               {"opts", "{limit: integer?, after: string?}?"}};
constexpr runtime::param_type list_returns[] = {{"items", "{key: string, value: any}[]?"},
                                                {"cursor_or_err", "string|luad.error|nil"}};

constexpr runtime::function_type manifest[] = {
    {"get", key_param, get_returns, "The value under key, or nil when absent or expired."},
    {"set", set_params, ok_returns,
     "Stores a copy of value under key (durable when it returns); opts.ttl expires it."},
    {"delete", key_param, ok_returns, "Removes key; true if it was there."},
    {"incr", incr_params, incr_returns,
     "Adds by (default 1) to the integer under key (absent = 0); returns the new value."},
    {"cas", cas_params, ok_returns,
     "Sets key to new (nil deletes) only if it holds expected (nil = absent); true if swapped."},
    {"list", list_params, list_returns,
     "Keys starting with prefix, in byte order, up to opts.limit (100, max 1000) after "
     "opts.after; returns items and a cursor for the next page (nil at the end)."},
};

runtime::module_exports build() {
  return {{{"get", store_get},
           {"set", store_set},
           {"delete", store_delete},
           {"incr", store_incr},
           {"cas", store_cas},
           {"list", store_list}},
          {store_yield::type()}};
}

}  // namespace

extern const runtime::module_def store_module{
    "store", "A durable key-value store in the process's namespace (permission store:NAME).",
    runtime::storage | runtime::nondeterministic, manifest, build};

}  // namespace luad::modules
