// Moving plain values and structured errors across the Lua boundary: push_value,
// to_value (which never raises), push_error and to_error with the shared
// `luad.error` metatable.
#include "runtime/lua_value.hpp"

#include <algorithm>
#include <climits>
#include <cstdio>
#include <new>
#include <string_view>
#include <vector>

#include "runtime/utf8.hpp"

namespace luad::runtime {

namespace {

constexpr int max_depth = 200;  // as json_max_depth and max_message_depth
// A DAG of shared subtables copies into a tree that can be exponentially larger
// than the Lua heap; this caps what one conversion may copy (estimated bytes).
constexpr std::size_t max_copy_bytes = std::size_t{256} << 20;
constexpr const char* error_metatable = "luad.error";

// ---- push_value ---------------------------------------------------------

void push_any(lua_State* L, const value& v);

int size_hint(std::size_t n) { return static_cast<int>(std::min<std::size_t>(n, INT_MAX)); }

struct pusher {
  lua_State* L;
  void operator()(std::monostate) const { lua_pushnil(L); }
  void operator()(bool b) const { lua_pushboolean(L, b ? 1 : 0); }
  void operator()(std::int64_t i) const { lua_pushinteger(L, i); }
  void operator()(double d) const { lua_pushnumber(L, d); }
  void operator()(const std::string& s) const { lua_pushlstring(L, s.data(), s.size()); }
  void operator()(const value::array& a) const {
    lua_createtable(L, size_hint(a.size()), 0);
    lua_Integer i = 0;
    for (const value& item : a) {
      push_any(L, item);
      lua_rawseti(L, -2, ++i);
    }
  }
  void operator()(const value::map& m) const {
    lua_createtable(L, 0, size_hint(m.size()));
    for (const auto& [key, item] : m) {
      lua_pushlstring(L, key.data(), key.size());
      push_any(L, item);
      lua_rawset(L, -3);
    }
  }
};

void push_any(lua_State* L, const value& v) {
  luaL_checkstack(L, 3, "value nested too deeply");
  std::visit(pusher{L}, v.data);
}

// ---- to_value -----------------------------------------------------------

// The string at `idx`, which must be an actual string (no conversion, no allocation).
std::string_view string_at(lua_State* L, int idx) {
  std::size_t len = 0;
  const char* s = lua_tolstring(L, idx, &len);
  return {s, len};
}

bool is_identifier(std::string_view s) {
  if (s.empty() || s.size() > 40 || (s[0] >= '0' && s[0] <= '9')) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
  });
}

// ".name", or ["key"] with at most 40 bytes of the key and anything but
// printable ASCII shown as '?', so that reasons stay valid UTF-8.
std::string path_segment(std::string_view key) {
  if (is_identifier(key)) return std::string(".").append(key);  // (GCC 12 -O3 warns on "." + s)
  std::string shown(key.substr(0, 40));
  for (char& c : shown) {
    if (c < 0x20 || c > 0x7E) c = '?';
  }
  return "[\"" + shown + "\"]";
}

// Walks one Lua value into a value tree. Uses only API calls that cannot raise.
// On failure leaves the stack as it found it, sets `why`, and builds `where`
// (".a[3]") as the recursion unwinds. Every node is charged to `budget`.
class reader {
 public:
  reader(lua_State* L, std::string& why, std::size_t& budget) : L_(L), why_(why), budget_(budget) {}

  bool read(int idx, value& out, int depth);
  const std::string& where() const { return where_; }
  bool too_large() const { return too_large_; }

 private:
  bool read_table(int idx, value& out, int depth);
  bool classify(int idx, std::size_t& count, bool& is_array);
  bool read_array(int idx, value::array& out, std::size_t n, int depth);
  bool read_map(int idx, value::map& out, std::size_t n, int depth);
  bool charge(std::size_t bytes);
  bool fail(const char* what) {
    why_ = what;
    return false;
  }

  lua_State* L_;
  std::string& why_;
  std::string where_;
  std::vector<const void*> path_;  // tables being read, outermost first
  std::size_t& budget_;
  bool too_large_ = false;
};

bool reader::charge(std::size_t bytes) {
  if (bytes > budget_) {
    too_large_ = true;
    return fail("value too large to copy");
  }
  budget_ -= bytes;
  return true;
}

bool reader::read(int idx, value& out, int depth) {
  if (!charge(sizeof(value))) return false;
  switch (int t = lua_type(L_, idx)) {
    case LUA_TNONE:
    case LUA_TNIL: out = value{}; return true;
    case LUA_TBOOLEAN: out = lua_toboolean(L_, idx) != 0; return true;
    case LUA_TNUMBER:
      if (lua_isinteger(L_, idx)) {
        out = std::int64_t{lua_tointegerx(L_, idx, nullptr)};
      } else {
        out = double{lua_tonumber(L_, idx)};
      }
      return true;
    case LUA_TSTRING: {
      std::string_view s = string_at(L_, idx);
      if (!charge(s.size()) || !charge(json_cost(s) - s.size())) return false;
      out = std::string(s);
      return true;
    }
    case LUA_TLIGHTUSERDATA:
      // The NULL light userdata is the null marker (json.null): it reads as nil.
      if (lua_touserdata(L_, idx) == nullptr) {
        out = value{};
        return true;
      }
      return fail("cannot convert a userdata");
    case LUA_TTABLE: return read_table(idx, out, depth);
    default: why_ = std::string("cannot convert a ") + lua_typename(L_, t); return false;
  }
}

bool reader::read_table(int idx, value& out, int depth) {
  if (depth >= max_depth) return fail("nesting deeper than 200 levels");
  const void* self = lua_topointer(L_, idx);
  if (std::find(path_.begin(), path_.end(), self) != path_.end()) {
    return fail("cycle detected");
  }
  if (!lua_checkstack(L_, 4)) return fail("out of Lua stack space");
  std::size_t count = 0;
  bool is_array = false;
  if (!classify(idx, count, is_array)) return false;
  path_.push_back(self);
  bool ok;
  if (is_array) {
    ok = read_array(idx, out.data.emplace<value::array>(), count, depth);
  } else {
    ok = read_map(idx, out.data.emplace<value::map>(), count, depth);
  }
  path_.pop_back();
  return ok;
}

// Decides array (keys exactly 1..n) or map (all keys strings; also the empty table).
bool reader::classify(int idx, std::size_t& count, bool& is_array) {
  std::size_t ints = 0, strings = 0;
  bool in_range = true;
  lua_Integer max_key = 0;
  lua_pushnil(L_);
  while (lua_next(L_, idx) != 0) {
    int kt = lua_type(L_, -2);
    if (kt == LUA_TSTRING) {
      ++strings;
    } else if (kt == LUA_TNUMBER && lua_isinteger(L_, -2)) {
      lua_Integer k = lua_tointegerx(L_, -2, nullptr);
      ++ints;
      if (k < 1) in_range = false;
      max_key = std::max(max_key, k);
    } else {
      lua_pop(L_, 2);
      if (kt == LUA_TNUMBER) return fail("table has a non-integer number key");
      why_ = std::string("table has a key of type ") + lua_typename(L_, kt);
      return false;
    }
    lua_pop(L_, 1);
  }
  if (ints > 0 && strings > 0) return fail("table mixes integer and string keys");
  // n distinct integer keys, all >= 1, the largest n: exactly 1..n.
  if (ints > 0 && (!in_range || max_key != static_cast<lua_Integer>(ints))) {
    return fail("table has integer keys that are not exactly 1..n");
  }
  is_array = ints > 0;
  count = ints + strings;
  return true;
}

bool reader::read_array(int idx, value::array& out, std::size_t n, int depth) {
  out.reserve(n);
  for (std::size_t i = 1; i <= n; ++i) {
    lua_rawgeti(L_, idx, static_cast<lua_Integer>(i));
    bool ok = read(lua_gettop(L_), out.emplace_back(), depth + 1);
    lua_pop(L_, 1);
    if (!ok) {
      where_ = std::string("[").append(std::to_string(i)).append("]").append(where_);
      return false;
    }
  }
  return true;
}

bool reader::read_map(int idx, value::map& out, std::size_t n, int depth) {
  out.reserve(n);
  lua_pushnil(L_);
  while (lua_next(L_, idx) != 0) {
    std::string_view key = string_at(L_, -2);  // keys are strings (classify)
    bool ok = charge(key.size() + sizeof(std::string)) && charge(json_cost(key) - key.size());
    if (ok) {
      out.emplace_back(std::string(key), value{});
      ok = read(lua_gettop(L_), out.back().second, depth + 1);
    }
    if (!ok) {
      lua_pop(L_, 2);
      where_ = path_segment(key) + where_;
      return false;
    }
    lua_pop(L_, 1);
  }
  return true;
}

// ---- errors ---------------------------------------------------------------

int error_tostring(lua_State* L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_pushliteral(L, "kind");
  lua_rawget(L, 1);
  lua_pushliteral(L, "message");
  lua_rawget(L, 1);
  const char* kind = luaL_tolstring(L, 2, nullptr);
  const char* message = luaL_tolstring(L, 3, nullptr);
  lua_pushfstring(L, "%s: %s", kind, message);
  return 1;
}

void push_error_metatable(lua_State* L) {
  if (luaL_newmetatable(L, error_metatable) != 0) {  // also sets __name
    lua_pushcfunction(L, error_tostring);
    lua_setfield(L, -2, "__tostring");
    // Hidden from getmetatable: a script that could write this shared
    // metatable could add __gc to it, and every later error would get a
    // finaliser (which Lua runs with hooks off, so it could never be stopped).
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
  }
}

void set_field(lua_State* L, const char* name, std::string_view s) {
  lua_pushlstring(L, s.data(), s.size());
  lua_setfield(L, -2, name);
}

// What lua.c prints for an error object that is not a string, without raising:
// numbers formatted as Lua would, everything else "(error object is a X value)".
std::string describe(lua_State* L, int idx) {
  char buf[64];
  int t = lua_type(L, idx);
  if (t == LUA_TNUMBER && lua_isinteger(L, idx)) {
    std::snprintf(buf, sizeof buf, LUA_INTEGER_FMT, lua_tointegerx(L, idx, nullptr));
  } else if (t == LUA_TNUMBER) {
    std::snprintf(buf, sizeof buf, LUA_NUMBER_FMT,
                  static_cast<LUAI_UACNUMBER>(lua_tonumber(L, idx)));
    std::string_view s(buf);
    if (s.find_first_not_of("-0123456789") == std::string_view::npos) {
      return std::string(s) + ".0";  // looks like an integer: Lua adds ".0"
    }
  } else {
    std::snprintf(buf, sizeof buf, "(error object is a %s value)", lua_typename(L, t));
  }
  return buf;
}

// Reads a structured error table without metamethods or allocation in Lua.
bool read_error_table(lua_State* L, int idx, error& e) {
  if (!lua_checkstack(L, 2)) return false;
  bool known = false;
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {
    if (lua_type(L, -2) == LUA_TSTRING) {
      std::string_view key = string_at(L, -2);
      bool is_string = lua_type(L, -1) == LUA_TSTRING;
      std::string_view val = is_string ? string_at(L, -1) : std::string_view();
      if (key == "kind" && is_string) {
        auto kind = kind_from_name(val);
        known = kind.has_value();
        if (known) e.kind = *kind;
      } else if (key == "message" && is_string) {
        e.message = val;
      } else if (key == "retryable") {
        e.retryable = lua_type(L, -1) == LUA_TBOOLEAN && lua_toboolean(L, -1) != 0;
      } else if (key == "traceback" && is_string) {
        e.traceback = val;
      }
    }
    lua_pop(L, 1);
  }
  return known;
}

}  // namespace

void push_value(lua_State* L, const value& v) { push_any(L, v); }

std::size_t json_cost(std::string_view s) {
  std::size_t cost = s.size();
  for (std::size_t i = 0; i < s.size(); ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c == '"' || c == '\\') {
      cost += 1;  // \" or \\ .
    } else if (c < 0x20 || c == 0x7F) {
      cost += 5;  // a six-byte escape
    } else if (c >= 0x80) {
      std::size_t n = utf8_sequence(s, i);
      if (n == 0) {
        cost += 5;  // a byte that is not UTF-8: printed as an escape
      } else {
        i += n - 1;
      }
    }
  }
  return cost;
}

copy_status copy_value(lua_State* L, int idx, value& out, std::string& why, std::size_t& budget) {
  idx = lua_absindex(L, idx);
  int top = lua_gettop(L);
  try {
    reader r(L, why, budget);
    if (r.read(idx, out, 0)) return copy_status::ok;
    if (!r.where().empty()) why += " (at " + r.where() + ")";
    return r.too_large() ? copy_status::too_large : copy_status::refused;
  } catch (const std::exception&) {  // bad_alloc, in practice
    lua_settop(L, top);
    out = value{};  // give back what the partial copy holds
    why = "out of memory";
    return copy_status::out_of_memory;
  }
}

bool to_value(lua_State* L, int idx, value& out, std::string& why) {
  std::size_t budget = max_copy_bytes;
  return copy_value(L, idx, out, why, budget) == copy_status::ok;
}

void push_error(lua_State* L, const error& e) {
  luaL_checkstack(L, 4, "cannot push error");
  lua_createtable(L, 0, 4);
  set_field(L, "kind", kind_name(e.kind));
  set_field(L, "message", e.message);
  lua_pushboolean(L, e.retryable ? 1 : 0);
  lua_setfield(L, -2, "retryable");
  if (!e.traceback.empty()) set_field(L, "traceback", e.traceback);
  push_error_metatable(L);
  lua_setmetatable(L, -2);
}

error to_error(lua_State* L, int idx) {
  idx = lua_absindex(L, idx);
  int top = lua_gettop(L);
  error e;
  try {
    if (lua_type(L, idx) == LUA_TTABLE && read_error_table(L, idx, e)) return e;
    e = error{error_kind::runtime, {}, false, {}};
    if (lua_type(L, idx) == LUA_TSTRING) {
      e.message = string_at(L, idx);
    } else {
      e.message = describe(L, idx);
    }
    return e;
  } catch (...) {
    lua_settop(L, top);
    throw;
  }
}

namespace {
int push_nil_error(lua_State* L, const error& e) {
  lua_pushnil(L);
  push_error(L, e);
  return 2;
}
}  // namespace

int push_failure(lua_State* L, const error& e) {
  return push_protected<error, push_nil_error>(L, e);
}

}  // namespace luad::runtime
