// The message codec: encode_message walks a Lua value with non-raising API calls
// only; push_message rebuilds it in another state, raising only memory errors.
//
// DESIGN. Format: one header byte (bit 0: the message has back-references),
// then one value, then, with back-references only, the u32 count of tables.
// A value is one tag byte and a payload in native byte order (a message never
// leaves the process): 0x80+n is the integer n (0..127), 0x40+n a string of n
// bytes (0..63); otherwise `tag` below. A table is {tag::table, u32 narr,
// u32 nhash}, then narr values (keys 1..narr) and nhash key/value pairs; both
// counts are patched in after the walk, which is a single lua_next pass: the run
// of keys 1, 2, 3... that lua_next yields first goes to the array part. Tables
// are numbered 1, 2... in the order they begin; a table met again is {tag::ref,
// u32 number}. The decoder keeps a table of tables only when the header says
// there are back-references, so small messages pay nothing for sharing.
#include "runtime/message_codec.hpp"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <unordered_map>

#include "runtime/string_cache.hpp"

namespace luad::runtime {

namespace {

namespace tag {
constexpr std::uint8_t nil = 0x00;
constexpr std::uint8_t false_ = 0x01;
constexpr std::uint8_t true_ = 0x02;
constexpr std::uint8_t int8 = 0x03;
constexpr std::uint8_t int16 = 0x04;
constexpr std::uint8_t int32 = 0x05;
constexpr std::uint8_t int64 = 0x06;
constexpr std::uint8_t number = 0x07;   // a float: lua_Number
constexpr std::uint8_t pointer = 0x08;  // a light userdata: void*
constexpr std::uint8_t string = 0x09;   // std::size_t length, then the bytes
constexpr std::uint8_t table = 0x0A;    // u32 narr, u32 nhash, then the contents
constexpr std::uint8_t ref = 0x0B;      // u32 number of a table already begun
constexpr std::uint8_t short_string = 0x40;
constexpr std::uint8_t fixint = 0x80;
}  // namespace tag

constexpr std::uint8_t has_refs = 0x01;  // header flag
static_assert(max_message_depth == 200, "update the refusal below");
constexpr std::size_t max_short_string = 63;
constexpr lua_Integer max_fixint = 127;

// ---- encoding --------------------------------------------------------------

// One encode_message call. Uses only Lua API calls that cannot raise; may throw
// std::bad_alloc (caught by encode_message, where no Lua error can be pending).
class encoder {
 public:
  encoder(lua_State* L, std::string& out, std::string& why, std::size_t limit)
      : L_(L), out_(out), why_(why), limit_(limit) {}

  bool value(int idx, int depth);
  bool finish(std::size_t start);
  bool too_large() const { return too_large_; }
  const std::string& where() const { return where_; }

 private:
  bool table(int idx, int depth);
  bool entries(int idx, int depth, std::uint32_t& narr, std::uint32_t& nhash);
  bool put_string(int idx);
  void put_integer(lua_Integer i);
  std::uint32_t find(const void* t) const;
  void remember(const void* t);
  bool fail(const char* what);
  bool located(int key, bool in_key);

  template <class T>
  void put(std::uint8_t t, T v) {
    char buf[1 + sizeof(T)];
    buf[0] = static_cast<char>(t);
    std::memcpy(buf + 1, &v, sizeof(T));
    out_.append(buf, sizeof buf);
  }
  void put(std::uint8_t t) { out_.push_back(static_cast<char>(t)); }

  static constexpr std::uint32_t few = 16;  // tables looked up linearly

  lua_State* L_;
  std::string& out_;
  std::string& why_;
  std::size_t limit_;  // out_ may not grow past this size
  std::string where_;  // ".a[3]", built as a failure unwinds
  const void* first_[few];
  std::unique_ptr<std::unordered_map<const void*, std::uint32_t>> rest_;  // after the first few
  std::uint32_t ntables_ = 0;
  bool refs_ = false;
  bool too_large_ = false;
};

bool encoder::fail(const char* what) {
  why_ = what;
  return false;
}

// Sets the header of the message that began at `start` and appends its trailer.
bool encoder::finish(std::size_t start) {
  if (refs_) {
    out_[start] = static_cast<char>(has_refs);
    out_.append(reinterpret_cast<const char*>(&ntables_), sizeof ntables_);
  }
  too_large_ = out_.size() > limit_;
  return !too_large_;
}

bool encoder::value(int idx, int depth) {
  if (out_.size() > limit_) {
    too_large_ = true;
    return false;
  }
  switch (lua_type(L_, idx)) {
    case LUA_TNONE:
    case LUA_TNIL: put(tag::nil); return true;
    case LUA_TBOOLEAN: put(lua_toboolean(L_, idx) != 0 ? tag::true_ : tag::false_); return true;
    case LUA_TNUMBER:
      if (lua_isinteger(L_, idx)) {
        put_integer(lua_tointegerx(L_, idx, nullptr));
      } else {
        put(tag::number, lua_tonumber(L_, idx));
      }
      return true;
    case LUA_TSTRING: return put_string(idx);
    case LUA_TLIGHTUSERDATA: put(tag::pointer, lua_touserdata(L_, idx)); return true;
    case LUA_TTABLE: return table(idx, depth);
    case LUA_TFUNCTION: return fail("cannot send a function");
    case LUA_TTHREAD: return fail("cannot send a thread");
    case LUA_TUSERDATA: return fail("cannot send a full userdata");
    default: return fail("cannot send this value");
  }
}

void encoder::put_integer(lua_Integer i) {
  if (i >= 0 && i <= max_fixint) {
    put(static_cast<std::uint8_t>(tag::fixint + i));
  } else if (i >= INT8_MIN && i <= INT8_MAX) {
    put(tag::int8, static_cast<std::int8_t>(i));
  } else if (i >= INT16_MIN && i <= INT16_MAX) {
    put(tag::int16, static_cast<std::int16_t>(i));
  } else if (i >= INT32_MIN && i <= INT32_MAX) {
    put(tag::int32, static_cast<std::int32_t>(i));
  } else {
    put(tag::int64, static_cast<std::int64_t>(i));
  }
}

bool encoder::put_string(int idx) {
  std::size_t len = 0;
  const char* s = lua_tolstring(L_, idx, &len);  // a string: no conversion, no allocation
  if (len > limit_ - out_.size()) {  // (value() checked that the subtraction cannot wrap)
    too_large_ = true;
    return false;
  }
  if (len <= max_short_string) {
    put(static_cast<std::uint8_t>(tag::short_string + len));
  } else {
    put(tag::string, len);
  }
  out_.append(s, len);
  return true;
}

std::uint32_t encoder::find(const void* t) const {
  std::uint32_t n = std::min(ntables_, few);
  for (std::uint32_t i = 0; i < n; ++i) {
    if (first_[i] == t) return i + 1;
  }
  if (ntables_ <= few) return 0;
  auto it = rest_->find(t);
  return it == rest_->end() ? 0 : it->second;
}

void encoder::remember(const void* t) {
  if (ntables_ < few) {
    first_[ntables_] = t;
  } else {
    if (!rest_) rest_ = std::make_unique<std::unordered_map<const void*, std::uint32_t>>();
    rest_->emplace(t, ntables_ + 1);
  }
  ++ntables_;
}

bool encoder::table(int idx, int depth) {
  const void* t = lua_topointer(L_, idx);
  if (std::uint32_t number = find(t)) {
    put(tag::ref, number);
    refs_ = true;
    return true;
  }
  if (depth >= max_message_depth) return fail("nesting deeper than 200 levels");
  if (!lua_checkstack(L_, 3)) return fail("out of Lua stack space");
  if (ntables_ == std::numeric_limits<std::uint32_t>::max()) return fail("too many tables");
  remember(t);
  std::size_t at = out_.size();
  put(tag::table, std::uint64_t{0});  // narr and nhash, patched below
  std::uint32_t narr = 0, nhash = 0;
  if (!entries(idx, depth + 1, narr, nhash)) return false;
  std::memcpy(out_.data() + at + 1, &narr, sizeof narr);
  std::memcpy(out_.data() + at + 1 + sizeof narr, &nhash, sizeof nhash);
  return true;
}

// Encodes the contents of the table at `idx`: first the run of keys 1, 2, ...
// that lua_next yields first (the array part, in practice), then the rest.
bool encoder::entries(int idx, int depth, std::uint32_t& narr, std::uint32_t& nhash) {
  lua_pushnil(L_);
  int key = lua_gettop(L_);  // lua_next replaces the key here and pushes the value above it
  while (lua_next(L_, idx) != 0) {
    int isint = 0;
    if (nhash == 0 && lua_type(L_, key) == LUA_TNUMBER &&
        lua_tointegerx(L_, key, &isint) == static_cast<lua_Integer>(narr) + 1 && isint) {
      ++narr;  // (number keys are never integral floats: Lua normalises them)
    } else {
      ++nhash;
      if (!value(key, depth)) return located(key, true);
    }
    if (!value(key + 1, depth)) return located(key, false);
    lua_pop(L_, 1);
  }
  return true;
}

bool is_identifier(const char* s, std::size_t len) {
  if (len == 0 || len > 40 || (s[0] >= '0' && s[0] <= '9')) return false;
  return std::all_of(s, s + len, [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
  });
}

// Prepends the path segment of the key at `key` to where_ ("[<key>]" when the
// key itself could not be encoded). Returns false, for `return located(...)`.
bool encoder::located(int key, bool in_key) {
  if (too_large_) return false;  // the reason names no place
  char buf[64];
  std::string segment;
  int t = lua_type(L_, key);
  if (in_key) {
    segment = "[<key>]";
  } else if (t == LUA_TSTRING) {
    std::size_t len = 0;
    const char* s = lua_tolstring(L_, key, &len);
    if (is_identifier(s, len)) {
      segment.append(".").append(s, len);
    } else {  // at most 40 bytes, anything but printable ASCII as '?': valid UTF-8
      segment.assign(s, std::min<std::size_t>(len, 40));
      for (char& c : segment) {
        if (c < 0x20 || c > 0x7E) c = '?';
      }
      segment = "[\"" + segment + "\"]";
    }
  } else if (t == LUA_TNUMBER && lua_isinteger(L_, key)) {
    std::snprintf(buf, sizeof buf, "[" LUA_INTEGER_FMT "]", lua_tointegerx(L_, key, nullptr));
    segment = buf;
  } else if (t == LUA_TNUMBER) {
    std::snprintf(buf, sizeof buf, "[%.14g]", static_cast<double>(lua_tonumber(L_, key)));
    segment = buf;
  } else if (t == LUA_TBOOLEAN) {
    segment = lua_toboolean(L_, key) != 0 ? "[true]" : "[false]";
  } else {
    segment = std::string("[<").append(lua_typename(L_, t)).append(">]");
  }
  where_.insert(0, segment);
  return false;
}

// ---- decoding --------------------------------------------------------------

// The decoder's state: trivially destructible, so a Lua error may jump over it.
struct wire_reader {
  const char* p;
  int refs;             // stack index of the table of tables, or 0
  lua_Integer ntables;  // tables created so far
  string_cache* cache;  // the receiver's short strings, or null
};

template <class T>
T take(wire_reader& r) {
  T v;
  std::memcpy(&v, r.p, sizeof(T));
  r.p += sizeof(T);
  return v;
}

void push_value(lua_State* L, wire_reader& r);

void push_table(lua_State* L, wire_reader& r) {
  auto narr = take<std::uint32_t>(r);
  auto nhash = take<std::uint32_t>(r);
  luaL_checkstack(L, 4, "message nested too deeply");  // table, key, value, cache's copy
  lua_createtable(L, static_cast<int>(narr), static_cast<int>(nhash));
  ++r.ntables;
  if (r.refs != 0) {
    lua_pushvalue(L, -1);
    lua_rawseti(L, r.refs, r.ntables);
  }
  for (std::uint32_t i = 1; i <= narr; ++i) {
    push_value(L, r);
    lua_rawseti(L, -2, i);
  }
  for (std::uint32_t i = 0; i < nhash; ++i) {
    push_value(L, r);
    push_value(L, r);
    lua_rawset(L, -3);
  }
}

void push_value(lua_State* L, wire_reader& r) {
  auto t = static_cast<std::uint8_t>(*r.p++);
  if (t >= tag::fixint) {
    lua_pushinteger(L, t - tag::fixint);
    return;
  }
  if (t >= tag::short_string) {
    std::size_t len = t - tag::short_string;
    push_received_string(L, r.cache, r.p, len);
    r.p += len;
    return;
  }
  switch (t) {
    case tag::nil: lua_pushnil(L); return;
    case tag::false_: lua_pushboolean(L, 0); return;
    case tag::true_: lua_pushboolean(L, 1); return;
    case tag::int8: lua_pushinteger(L, take<std::int8_t>(r)); return;
    case tag::int16: lua_pushinteger(L, take<std::int16_t>(r)); return;
    case tag::int32: lua_pushinteger(L, take<std::int32_t>(r)); return;
    case tag::int64: lua_pushinteger(L, take<std::int64_t>(r)); return;
    case tag::number: lua_pushnumber(L, take<lua_Number>(r)); return;
    case tag::pointer: lua_pushlightuserdata(L, take<void*>(r)); return;
    case tag::string: {
      auto len = take<std::size_t>(r);
      lua_pushlstring(L, r.p, len);
      r.p += len;
      return;
    }
    case tag::table: push_table(L, r); return;
    case tag::ref: lua_rawgeti(L, r.refs, take<std::uint32_t>(r)); return;
    default: lua_pushnil(L); return;  // unreachable for bytes from encode_message
  }
}

}  // namespace

bool encode_message(lua_State* L, int idx, std::string& out, std::string& why,
                    std::size_t max_bytes) {
  int top = lua_gettop(L);
  if (idx < 0 && idx > LUA_REGISTRYINDEX) idx += top + 1;  // lua_absindex, one call fewer
  std::size_t start = out.size();
  try {
    encoder e(L, out, why, start + std::min(max_bytes, out.max_size() - start));
    out.push_back(0);  // the header
    if (e.value(idx, 0) && e.finish(start)) return true;
    lua_settop(L, top);
    out.resize(start);
    if (e.too_large()) {
      why = "message larger than " + std::to_string(max_bytes) + " bytes";
    } else if (!e.where().empty()) {
      why += " (at " + e.where() + ")";
    }
    return false;
  } catch (const std::exception&) {  // bad_alloc, in practice
    lua_settop(L, top);
    out.resize(start);
    why = "out of memory";
    return false;
  }
}

void push_message(lua_State* L, std::string_view bytes, string_cache* cache) {
  wire_reader r{bytes.data(), 0, 0, cache};
  auto flags = static_cast<std::uint8_t>(*r.p++);
  if ((flags & has_refs) != 0) {
    std::uint32_t n = 0;
    std::memcpy(&n, bytes.data() + bytes.size() - sizeof n, sizeof n);
    luaL_checkstack(L, 3, "cannot push message");
    lua_createtable(L, static_cast<int>(n), 0);
    r.refs = lua_gettop(L);
    push_value(L, r);
    lua_remove(L, r.refs);
    return;
  }
  luaL_checkstack(L, 2, "cannot push message");  // the value, the cache's copy
  push_value(L, r);
}

namespace {

template <class T>
void put_raw(std::string& out, std::uint8_t t, T v) {
  char buf[1 + sizeof(T)];
  buf[0] = static_cast<char>(t);
  std::memcpy(buf + 1, &v, sizeof(T));
  out.append(buf, sizeof buf);
}

void put_plain_string(std::string& out, const std::string& s) {
  if (s.size() <= max_short_string) {
    out.push_back(static_cast<char>(tag::short_string + s.size()));
  } else {
    put_raw(out, tag::string, s.size());
  }
  out += s;
}

void put_plain(std::string& out, const value& v) {
  struct visitor {
    std::string& out;
    void operator()(std::monostate) const { out.push_back(static_cast<char>(tag::nil)); }
    void operator()(bool b) const {
      out.push_back(static_cast<char>(b ? tag::true_ : tag::false_));
    }
    void operator()(std::int64_t i) const {
      if (i >= 0 && i <= max_fixint) {
        out.push_back(static_cast<char>(tag::fixint + i));
      } else {
        put_raw(out, tag::int64, i);
      }
    }
    void operator()(double d) const { put_raw(out, tag::number, static_cast<lua_Number>(d)); }
    void operator()(const std::string& s) const { put_plain_string(out, s); }
    void operator()(const value::array& a) const {
      out.push_back(static_cast<char>(tag::table));
      auto n = static_cast<std::uint32_t>(a.size());
      std::uint32_t zero = 0;
      out.append(reinterpret_cast<const char*>(&n), sizeof n);
      out.append(reinterpret_cast<const char*>(&zero), sizeof zero);
      for (const value& e : a) put_plain(out, e);
    }
    void operator()(const value::map& m) const {
      out.push_back(static_cast<char>(tag::table));
      auto n = static_cast<std::uint32_t>(m.size());
      std::uint32_t zero = 0;
      out.append(reinterpret_cast<const char*>(&zero), sizeof zero);
      out.append(reinterpret_cast<const char*>(&n), sizeof n);
      for (const auto& [k, e] : m) {
        put_plain_string(out, k);
        put_plain(out, e);
      }
    }
  };
  std::visit(visitor{out}, v.data);
}

}  // namespace

namespace {

// Walks an encoding without trusting it (valid_message).
class checker {
 public:
  explicit checker(std::string_view b) : p_(b.data()), end_(b.data() + b.size()) {}
  bool header_and_value(std::uint32_t& tables_seen) {
    if (p_ == end_) return false;
    auto flags = static_cast<std::uint8_t>(*p_++);
    if (flags & ~has_refs) return false;
    if (flags & has_refs) {
      if (end_ - p_ < static_cast<std::ptrdiff_t>(sizeof(std::uint32_t))) return false;
      end_ -= sizeof(std::uint32_t);
      std::memcpy(&declared_, end_, sizeof declared_);
      refs_ = true;
    }
    if (!value(0)) return false;
    tables_seen = tables_;
    return p_ == end_ && (!refs_ || declared_ == tables_);
  }

 private:
  bool skip(std::size_t n) {
    if (static_cast<std::size_t>(end_ - p_) < n) return false;
    p_ += n;
    return true;
  }
  template <class T>
  bool read(T& v) {
    if (static_cast<std::size_t>(end_ - p_) < sizeof(T)) return false;
    std::memcpy(&v, p_, sizeof(T));
    p_ += sizeof(T);
    return true;
  }
  bool value(int depth) {
    if (p_ == end_) return false;
    auto t = static_cast<std::uint8_t>(*p_++);
    if (t >= tag::fixint) return true;
    if (t >= tag::short_string) return skip(t - tag::short_string);
    switch (t) {
      case tag::nil:
      case tag::false_:
      case tag::true_: return true;
      case tag::int8: return skip(1);
      case tag::int16: return skip(2);
      case tag::int32: return skip(4);
      case tag::int64: return skip(8);
      case tag::number: return skip(sizeof(lua_Number));
      case tag::pointer: return skip(sizeof(void*));
      case tag::string: {
        std::size_t len;
        return read(len) && skip(len);
      }
      case tag::ref: {
        std::uint32_t n;
        return refs_ && read(n) && n >= 1 && n <= tables_;
      }
      case tag::table: {
        std::uint32_t narr, nhash;
        if (depth >= max_message_depth || !read(narr) || !read(nhash)) return false;
        // Each entry takes at least one byte: reject counts the bytes cannot hold.
        if (std::uint64_t{narr} + 2 * std::uint64_t{nhash} > static_cast<std::uint64_t>(end_ - p_))
          return false;
        ++tables_;
        for (std::uint32_t i = 0; i < narr; ++i)
          if (!value(depth + 1)) return false;
        for (std::uint32_t i = 0; i < nhash; ++i) {
          const char* key = p_;
          if (!value(depth + 1)) return false;
          if (static_cast<std::uint8_t>(*key) == tag::nil) return false;  // a nil key
          if (!value(depth + 1)) return false;
        }
        return true;
      }
      default: return false;
    }
  }

  const char* p_;
  const char* end_;
  bool refs_ = false;
  std::uint32_t declared_ = 0;
  std::uint32_t tables_ = 0;
};

}  // namespace

bool valid_message(std::string_view bytes) noexcept {
  std::uint32_t tables = 0;
  return checker(bytes).header_and_value(tables);
}

bool decode_integer(std::string_view bytes, std::int64_t& out) noexcept {
  if (bytes.size() < 2 || bytes[0] != 0) return false;
  auto t = static_cast<std::uint8_t>(bytes[1]);
  std::string_view rest = bytes.substr(2);
  auto get = [&](auto v) {
    if (rest.size() != sizeof v) return false;
    std::memcpy(&v, rest.data(), sizeof v);
    out = v;
    return true;
  };
  if (t >= tag::fixint) {
    out = t - tag::fixint;
    return rest.empty();
  }
  switch (t) {
    case tag::int8: return get(std::int8_t{});
    case tag::int16: return get(std::int16_t{});
    case tag::int32: return get(std::int32_t{});
    case tag::int64: return get(std::int64_t{});
    default: return false;
  }
}

namespace {

// Rebuilds a value from bytes valid_message accepted; false for what a value
// cannot hold (back-references, pointers, a table with both parts or a
// non-string key).
bool read_plain(wire_reader& r, value& out) {
  auto t = take<std::uint8_t>(r);
  if (t >= tag::fixint) return out = value(std::int64_t{t - tag::fixint}), true;
  if (t >= tag::short_string) {
    std::size_t len = t - tag::short_string;
    out = value(std::string(r.p, len));
    r.p += len;
    return true;
  }
  switch (t) {
    case tag::nil: out = value(); return true;
    case tag::false_: out = value(false); return true;
    case tag::true_: out = value(true); return true;
    case tag::int8: out = value(std::int64_t{take<std::int8_t>(r)}); return true;
    case tag::int16: out = value(std::int64_t{take<std::int16_t>(r)}); return true;
    case tag::int32: out = value(std::int64_t{take<std::int32_t>(r)}); return true;
    case tag::int64: out = value(std::int64_t{take<std::int64_t>(r)}); return true;
    case tag::number: out = value(static_cast<double>(take<lua_Number>(r))); return true;
    case tag::string: {
      auto len = take<std::size_t>(r);
      out = value(std::string(r.p, len));
      r.p += len;
      return true;
    }
    case tag::table: {
      auto narr = take<std::uint32_t>(r);
      auto nhash = take<std::uint32_t>(r);
      if (narr && nhash) return false;
      if (nhash == 0) {
        value::array a(narr);
        for (value& e : a)
          if (!read_plain(r, e)) return false;
        return out = value(std::move(a)), true;
      }
      value::map m(nhash);
      for (auto& [k, e] : m) {
        value key;
        if (!read_plain(r, key) || !key.get<std::string>() || !read_plain(r, e)) return false;
        k = std::move(std::get<std::string>(key.data));
      }
      return out = value(std::move(m)), true;
    }
    default: return false;  // ref, pointer
  }
}

}  // namespace

std::optional<value> decode_value(std::string_view bytes) {
  if (!valid_message(bytes) || static_cast<std::uint8_t>(bytes[0]) != 0) return std::nullopt;
  wire_reader r{bytes.data() + 1, 0, 0, nullptr};
  value v;
  if (!read_plain(r, v) || r.p != bytes.data() + bytes.size()) return std::nullopt;
  return v;
}

void append_packed_arg(std::string& packed, std::string_view encoded) {
  auto size = static_cast<std::uint32_t>(encoded.size());
  packed.append(reinterpret_cast<const char*>(&size), sizeof size);
  packed.append(encoded);
}

void encode_value(const value& v, std::string& out) {
  out.push_back(0);  // the header: no back-references
  put_plain(out, v);
}

}  // namespace luad::runtime
