// The `http` module: request, get and post, each yielding one fetch.request
// command to the fetch dispatcher. Bindings check argument types (misuse
// raises), then the URL and the process's permissions (refusals return
// nil, err) before anything reaches the network.
#include <cctype>
#include <cstdio>
#include <cstring>
#include <string>

#include "dispatcher/fetch_request.hpp"
#include "modules/modules.hpp"
#include "runtime/lua_value.hpp"
#include "runtime/process.hpp"
#include "runtime/result.hpp"
#include "runtime/yield.hpp"

namespace luad::modules {

namespace {

using runtime::error;
using runtime::error_kind;
using runtime::param_type;
using runtime::value;

// --- the response --------------------------------------------------------------

// Response headers reach scripts as an empty read-only proxy; its metatable
// (one per response) holds the table of lower-cased names at [1], and
// __index lower-cases the key, so resp.headers["Content-Type"] works.
int headers_index(lua_State* L) {
  lua_getmetatable(L, 1);
  lua_rawgeti(L, -1, 1);
  if (lua_type(L, 2) != LUA_TSTRING) {
    lua_pushnil(L);
    return 1;
  }
  lua_pushvalue(L, 2);
  if (lua_rawget(L, -2) != LUA_TNIL) return 1;  // asked in lower case already
  lua_pop(L, 1);
  std::size_t len;
  const char* key = lua_tolstring(L, 2, &len);
  luaL_Buffer b;
  char* lower = luaL_buffinitsize(L, &b, len);
  for (std::size_t i = 0; i < len; ++i)
    lower[i] = static_cast<char>(std::tolower(static_cast<unsigned char>(key[i])));
  luaL_pushresultsize(&b, len);
  lua_rawget(L, -2);
  return 1;
}

int headers_newindex(lua_State* L) { return luaL_error(L, "response headers are read-only"); }

int headers_next(lua_State* L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 2);
  if (lua_next(L, 1)) return 2;
  lua_pushnil(L);
  return 1;
}

int headers_pairs(lua_State* L) {
  lua_pushcfunction(L, headers_next);
  lua_getmetatable(L, 1);
  lua_rawgeti(L, -1, 1);
  lua_remove(L, -2);
  lua_pushnil(L);
  return 3;
}

void push_headers(lua_State* L, const value* headers) {
  const auto* map = headers ? headers->get<value::map>() : nullptr;
  lua_createtable(L, 0, 0);  // the proxy
  lua_createtable(L, 1, 5);  // its metatable
  lua_createtable(L, 0, map ? static_cast<int>(map->size()) : 0);
  if (map) {
    for (const auto& [name, text] : *map) {
      const auto* s = text.get<std::string>();
      lua_pushlstring(L, name.data(), name.size());
      if (s) {
        lua_pushlstring(L, s->data(), s->size());
      } else {
        lua_pushliteral(L, "");
      }
      lua_rawset(L, -3);
    }
  }
  lua_rawseti(L, -2, 1);
  lua_pushcfunction(L, headers_index);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, headers_newindex);
  lua_setfield(L, -2, "__newindex");
  lua_pushcfunction(L, headers_pairs);
  lua_setfield(L, -2, "__pairs");
  lua_pushboolean(L, 0);
  lua_setfield(L, -2, "__metatable");
  lua_setmetatable(L, -2);
}

// resp = {status, headers, body, url}; run under push_protected.
int push_response(lua_State* L, const value& v) {
  if (!v.get<value::map>()) {
    lua_pushnil(L);
    runtime::push_error(L, error{error_kind::internal, "fetch returned no response", false, {}});
    return 2;
  }
  lua_createtable(L, 0, 4);
  const value* status = v.find("status");
  const auto* code = status ? status->get<std::int64_t>() : nullptr;
  lua_pushinteger(L, code ? static_cast<lua_Integer>(*code) : 0);
  lua_setfield(L, -2, "status");
  push_headers(L, v.find("headers"));
  lua_setfield(L, -2, "headers");
  for (const char* name : {"body", "url"}) {
    const value* f = v.find(name);
    const auto* s = f ? f->get<std::string>() : nullptr;
    if (s) {
      lua_pushlstring(L, s->data(), s->size());
    } else {
      lua_pushliteral(L, "");
    }
    lua_setfield(L, -2, name);
  }
  return 1;
}

class request_yield final
    : public runtime::pooled_yield<request_yield, runtime::command_id::fetch_request> {
 public:
  static constexpr const char* type_name = "http.request";
  value request;  // the fetch.request map

  value args() { return std::move(request); }
  int handle_result(lua_State* L, const value& v, const error* err) override {
    int n =
        err ? runtime::push_failure(L, *err) : runtime::push_protected<value, push_response>(L, v);
    if (n >= 0) return n;
    // Out of Lua memory: a body larger than the process may hold. The failed
    // allocation is gone, so a small error usually fits; if even that fails,
    // the process is out of memory for good and the limit ends it.
    lua_pop(L, 1);
    n = runtime::push_failure(L, error{error_kind::limit,
                                       "the response does not fit in the process's memory limit",
                                       false,
                                       {}});
    if (n >= 0) return n;
    runtime::process::of(L)->doom_if_out_of_memory(LUA_ERRMEM);
    lua_pushnil(L);
    lua_insert(L, -2);
    return 2;
  }
};

// --- the request -------------------------------------------------------------

// The inputs a binding gathers onto the stack, in this order, from base + 1.
enum slot : int {
  s_method,
  s_url,
  s_headers,
  s_body,
  s_timeout,
  s_connect_timeout,
  s_max_body,
  s_redirects,
  s_tls,
  s_verify,
  s_count
};
constexpr const char* slot_names[] = {"method",          "url",      "headers",   "body", "timeout",
                                      "connect_timeout", "max_body", "redirects", "tls",  "verify"};
constexpr int slot_types[] = {LUA_TSTRING, LUA_TSTRING, LUA_TTABLE,  LUA_TSTRING, LUA_TNUMBER,
                              LUA_TNUMBER, LUA_TNUMBER, LUA_TNUMBER, LUA_TTABLE,  LUA_TBOOLEAN};

// Raises for a key of the options table at `opts` that names no option (a
// typo would otherwise be ignored silently). get and post take the method,
// url and body as arguments, so `fixed` refuses those keys.
void check_option_names(lua_State* L, const char* fn, int opts, bool fixed) {
  lua_pushnil(L);
  while (lua_next(L, opts)) {
    lua_pop(L, 1);
    bool known = false;
    if (lua_type(L, -1) == LUA_TSTRING) {
      const char* key = lua_tostring(L, -1);
      for (int s = 0; s < s_count && !known; ++s) {
        if (s == s_verify || (fixed && (s == s_method || s == s_url || s == s_body))) continue;
        known = std::strcmp(key, slot_names[s]) == 0;
      }
    }
    if (!known) {
      lua_pushvalue(L, -1);  // tostring on a copy: the key itself stays intact for lua_next
      return (void)luaL_error(L, "%s: unknown option '%s'", fn, luaL_tolstring(L, -1, nullptr));
    }
  }
}

// Pushes the slots: field values from the options table at `opts` (0: none),
// except that `url_arg`/`body_arg` (when non-zero) and `method` (when given)
// win. Raises on a field of the wrong type (misuse); no C++ object is alive.
int gather(lua_State* L, const char* fn, int opts, int url_arg, int body_arg, const char* method) {
  luaL_checkstack(L, s_count + 8, "too many nested calls");
  if (opts) check_option_names(L, fn, opts, method != nullptr);
  int base = lua_gettop(L);
  for (int s = 0; s < s_count; ++s) {
    if (s == s_method && method) {
      lua_pushstring(L, method);
    } else if (s == s_url && url_arg) {
      lua_pushvalue(L, url_arg);
    } else if (s == s_body && body_arg) {
      lua_pushvalue(L, body_arg);
    } else if (s == s_verify) {
      if (lua_istable(L, base + 1 + s_tls)) {
        lua_getfield(L, base + 1 + s_tls, "verify");
      } else {
        lua_pushnil(L);
      }
    } else if (opts) {
      lua_getfield(L, opts, slot_names[s]);
    } else {
      lua_pushnil(L);
    }
    int t = lua_type(L, -1);
    if (t != LUA_TNIL && t != slot_types[s]) {
      return luaL_error(L, "%s: '%s' must be a %s, not %s", fn,
                        s == s_verify ? "tls.verify" : slot_names[s],
                        lua_typename(L, slot_types[s]), luaL_typename(L, -1));
    }
    if ((s == s_max_body || s == s_redirects) && t == LUA_TNUMBER) {
      int exact = 0;
      lua_tointegerx(L, -1, &exact);
      if (!exact) return luaL_error(L, "%s: '%s' must be an integer", fn, slot_names[s]);
    }
  }
  if (lua_isnil(L, base + 1 + s_url)) return luaL_error(L, "%s: 'url' is required", fn);
  return base;
}

std::string_view slot_string(lua_State* L, int base, int s) {
  std::size_t len = 0;
  const char* text = lua_tolstring(L, base + 1 + s, &len);  // a string already: cannot raise
  return {text, len};
}

// The C++ half of a request: the fetch.request map from the slots, checking
// the URL and the process's permissions, or why it is refused before it starts.
runtime::result<value> build_args(lua_State* L, int base) noexcept {
  try {
    dispatcher::http_url url;
    std::string reason;
    std::string_view url_text = slot_string(L, base, s_url);
    if (!dispatcher::parse_http_url(url_text, url, reason))
      return runtime::fail(error_kind::invalid, reason);
    const runtime::permission_list& perms = runtime::process::of(L)->context().permissions;
    if (!runtime::allows_http(perms, url.host, url.port)) return dispatcher::permission_error(url);
    bool verify = lua_isnil(L, base + 1 + s_verify) || lua_toboolean(L, base + 1 + s_verify);
    if (!verify && !runtime::allows_insecure_tls(perms)) {
      return runtime::fail(error_kind::permission_denied,
                           "this process may not turn TLS verification off (grant it with --allow "
                           "http:insecure)");
    }
    value::map m;
    m.reserve(10);
    m.emplace_back("url", std::string(url_text));
    m.emplace_back("method", lua_isnil(L, base + 1 + s_method)
                                 ? std::string("GET")
                                 : std::string(slot_string(L, base, s_method)));
    if (!lua_isnil(L, base + 1 + s_headers)) {
      value headers;
      if (!runtime::to_value(L, base + 1 + s_headers, headers, reason))
        return runtime::fail(error_kind::invalid, "bad headers: " + reason);
      m.emplace_back("headers", std::move(headers));
    }
    if (!lua_isnil(L, base + 1 + s_body))
      m.emplace_back("body", std::string(slot_string(L, base, s_body)));
    for (int s : {s_timeout, s_connect_timeout}) {
      if (!lua_isnil(L, base + 1 + s))
        m.emplace_back(slot_names[s], static_cast<double>(lua_tonumber(L, base + 1 + s)));
    }
    for (int s : {s_max_body, s_redirects}) {
      if (!lua_isnil(L, base + 1 + s))
        m.emplace_back(slot_names[s], static_cast<std::int64_t>(lua_tointeger(L, base + 1 + s)));
    }
    if (!verify) m.emplace_back("verify", false);
    if (!lua_isnil(L, base + 1 + s_redirects) && lua_tointeger(L, base + 1 + s_redirects) > 0) {
      value::array allow;  // every hop's host is checked against the same grants
      for (const std::string& p : perms)
        if (p.starts_with("http:")) allow.emplace_back(p);
      m.emplace_back("allow", std::move(allow));
    }
    return value(std::move(m));
  } catch (...) {
    return runtime::fail(error_kind::internal, "out of memory");  // (fits without allocating)
  }
}

// Starts the request described by the slots above `base`: yields, or returns
// nil, err when it is refused.
int start_request(lua_State* L, int base) {
  request_yield* y = request_yield::acquire(L);
  int n = 0;
  {
    runtime::result<value> args = build_args(L, base);
    if (args) {
      y->request = std::move(*args);
    } else {
      lua_pop(L, 1);  // the yield object
      y->release();
      n = runtime::push_failure(L, args.error());
    }
  }
  if (n < 0) return lua_error(L);  // Lua's memory error, raised once `args` is gone
  return n > 0 ? n : -1;
}

int http_request(lua_State* L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  return start_request(L, gather(L, "http.request", 1, 0, 0, nullptr));
}

int http_get(lua_State* L) {
  luaL_checkstring(L, 1);
  if (!lua_isnoneornil(L, 2)) luaL_checktype(L, 2, LUA_TTABLE);
  lua_settop(L, 2);
  return start_request(L, gather(L, "http.get", lua_istable(L, 2) ? 2 : 0, 1, 0, "GET"));
}

int http_post(lua_State* L) {
  luaL_checkstring(L, 1);
  luaL_checkstring(L, 2);
  if (!lua_isnoneornil(L, 3)) luaL_checktype(L, 3, LUA_TTABLE);
  lua_settop(L, 3);
  return start_request(L, gather(L, "http.post", lua_istable(L, 3) ? 3 : 0, 1, 2, "POST"));
}

// --- the module ----------------------------------------------------------------

#define LUAD_HTTP_OPTIONS                                                         \
  "headers: table<string, string>?, timeout: number?, connect_timeout: number?, " \
  "max_body: integer?, redirects: integer?, tls: {verify: boolean?}?"

constexpr param_type request_params[] = {
    {"request", "{method: string?, url: string, body: string?, " LUAD_HTTP_OPTIONS "}"}};
constexpr param_type get_params[] = {{"url", "string"}, {"opts", "{" LUAD_HTTP_OPTIONS "}?"}};
constexpr param_type post_params[] = {
    {"url", "string"}, {"body", "string"}, {"opts", "{" LUAD_HTTP_OPTIONS "}?"}};
constexpr param_type response_returns[] = {
    {"resp", "{status: integer, headers: table<string, string>, body: string, url: string}?"},
    {"err", "luad.error?"}};

#undef LUAD_HTTP_OPTIONS

constexpr runtime::function_type manifest[] = {
    {"request", request_params, response_returns,
     "Sends an HTTP/1.1 request and waits for the response: resp.status, resp.headers "
     "(case-insensitive, read-only), resp.body, resp.url. Non-2xx statuses are responses; "
     "failures return nil and an error (timeout, unavailable, invalid, limit, "
     "permission_denied). Defaults: GET, timeout 30 s, connect_timeout 10 s, max_body 8 MiB "
     "(at most 64 MiB), redirects 0 (at most 10), TLS verified."},
    {"get", get_params, response_returns, "http.request with method GET and url."},
    {"post", post_params, response_returns, "http.request with method POST, url and body."},
};

runtime::module_exports build() {
  return {{{"request", http_request}, {"get", http_get}, {"post", http_post}},
          {request_yield::type()}};
}

}  // namespace

extern const runtime::module_def http_module{
    "http", "HTTP/1.1 client: request, get and post with timeouts, size limits and TLS.",
    runtime::network | runtime::nondeterministic, manifest, build};

}  // namespace luad::modules
