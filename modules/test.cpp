// The `test` module, for scripts run by `luad test` (docs/testing.md): the
// bindings that reach the test's fakes (dispatcher/test_fakes.hpp: faked HTTP
// answers, the requests made, the virtual clock) and two helpers of the
// driver. Its Lua part, modules/test.lua, adds the assertions. Only `luad
// test` registers it (modules::with_test()); the daemon does not.
#include <cctype>
#include <new>
#include <optional>
#include <string>
#include <vector>

#include "dispatcher/test_fakes.hpp"
#include "modules/modules.hpp"
#include "runtime/lua_value.hpp"
#include "runtime/process.hpp"
#include "test_script.hpp"

namespace luad::modules {

namespace {

using dispatcher::http_fake;
using dispatcher::test_fakes;
using runtime::error;
using runtime::error_kind;
using runtime::param_type;

// The fakes of the calling process; raises outside `luad test`.
const test_fakes& fakes_of(lua_State* L) {
  const auto* f = dynamic_cast<const test_fakes*>(runtime::process::of(L)->own_sink());
  if (!f) luaL_error(L, "test: only for scripts run by luad test");
  return *f;
}

// The rule test.fake_http reads, checked before any C++ object exists:
// fake_http(method, url, status, body, headers, times, error_kind, error_message).
struct rule_args {
  const char* method;
  std::size_t method_len;
  const char* url;
  std::size_t url_len;
  lua_Integer status;
  const char* body;
  std::size_t body_len;
  lua_Integer times;
  const char* fail_kind;
  const char* fail_message;
};

rule_args check_rule(lua_State* L) {
  rule_args a{};
  a.method = luaL_optlstring(L, 1, "", &a.method_len);
  a.url = luaL_checklstring(L, 2, &a.url_len);
  a.status = luaL_optinteger(L, 3, 200);
  luaL_argcheck(L, a.status >= 100 && a.status <= 999, 3, "an HTTP status (100-999) expected");
  a.body = luaL_optlstring(L, 4, "", &a.body_len);
  if (!lua_isnoneornil(L, 5)) luaL_checktype(L, 5, LUA_TTABLE);
  a.times = luaL_optinteger(L, 6, -1);
  luaL_argcheck(L, a.times == -1 || a.times > 0, 6, "a positive number of answers expected");
  a.fail_kind = luaL_optstring(L, 7, nullptr);
  a.fail_message = luaL_optstring(L, 8, "faked by test.fake_http");
  if (a.fail_kind && !runtime::kind_from_name(a.fail_kind))
    luaL_argerror(L, 7, "an error kind expected (timeout, unavailable, ...)");
  // Header names and values: strings only (lua_next and lua_tolstring on
  // strings do not raise).
  if (lua_istable(L, 5)) {
    lua_pushnil(L);
    while (lua_next(L, 5)) {
      if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
        luaL_argerror(L, 5, "headers: a table of strings by name expected");
      lua_pop(L, 1);
    }
  }
  return a;
}

std::optional<error> add_rule(lua_State* L, const test_fakes& fakes, const rule_args& a) noexcept {
  try {
    http_fake rule;
    rule.method.assign(a.method, a.method_len);
    for (char& c : rule.method) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    rule.url.assign(a.url, a.url_len);
    rule.status = a.status;
    rule.body.assign(a.body, a.body_len);
    rule.times = a.times;
    if (a.fail_kind)
      rule.fail = error{*runtime::kind_from_name(a.fail_kind), a.fail_message, true, {}};
    if (lua_istable(L, 5)) {
      lua_pushnil(L);
      while (lua_next(L, 5)) {
        std::string name = lua_tostring(L, -2);
        for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        std::size_t n;
        const char* v = lua_tolstring(L, -1, &n);
        rule.headers.emplace_back(std::move(name), std::string(v, n));
        lua_pop(L, 1);
      }
    }
    return fakes.add_http(std::move(rule));
  } catch (const std::bad_alloc&) {
    return error{error_kind::limit, "out of memory", false, {}};
  }
}

// fake_http(...): see the Lua part's test.http for the friendly form.
int test_fake_http(lua_State* L) {
  const test_fakes& fakes = fakes_of(L);
  rule_args a = check_rule(L);
  int n = 0;
  {
    std::optional<error> e = add_rule(L, fakes, a);
    if (e) n = runtime::push_failure(L, *e);
  }
  if (n < 0) return lua_error(L);
  if (n > 0) return n;
  lua_pushboolean(L, 1);
  return 1;
}

// requests(): {method, url, headers, body} for each request made so far.
int push_list(lua_State* L, const runtime::value& v) {
  runtime::push_value(L, v);
  return 1;
}

int test_requests(lua_State* L) {
  const test_fakes& fakes = fakes_of(L);
  int n = 0;
  try {
    std::size_t dropped = 0;
    runtime::value::array items;
    for (auto& s : fakes.http_requests(dropped)) {
      items.push_back(runtime::value::map{{"method", std::move(s.method)},
                                          {"url", std::move(s.url)},
                                          {"headers", std::move(s.headers)},
                                          {"body", std::move(s.body)}});
    }
    n = runtime::push_protected<runtime::value, push_list>(L, runtime::value(std::move(items)));
  } catch (const std::bad_alloc&) {
    n = runtime::out_of_memory;
  }
  if (n == runtime::out_of_memory) return luaL_error(L, "not enough memory");
  return n < 0 ? lua_error(L) : n;
}

// elapsed(): virtual seconds since the test began.
int test_elapsed(lua_State* L) {
  lua_pushnumber(L, fakes_of(L).elapsed());
  return 1;
}

// _line(fn): the line a Lua function is defined on (the driver's test order).
int test_line(lua_State* L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_Debug ar;
  lua_pushvalue(L, 1);
  lua_getinfo(L, ">S", &ar);
  lua_pushinteger(L, ar.linedefined);
  return 1;
}

// _trace(err): the error with a traceback (the driver's xpcall handler).
int test_trace(lua_State* L) {
  const char* msg = luaL_tolstring(L, 1, nullptr);
  luaL_traceback(L, L, msg, 1);
  return 1;
}

constexpr param_type fake_params[] = {{"method", "string?"},
                                      {"url", "string"},
                                      {"status", "integer?"},
                                      {"body", "string?"},
                                      {"headers", "table<string, string>?"},
                                      {"times", "integer?"},
                                      {"error_kind", "string?"},
                                      {"error_message", "string?"}};
constexpr param_type ok_returns[] = {{"ok", "boolean?"}, {"err", "luad.error?"}};
constexpr param_type requests_returns[] = {{"requests", "table[]"}};
constexpr param_type seconds_return[] = {{"seconds", "number"}};
constexpr param_type fn_param[] = {{"fn", "function"}};
constexpr param_type line_return[] = {{"line", "integer"}};
constexpr param_type trace_param[] = {{"err", "any"}};
constexpr param_type trace_return[] = {{"text", "string"}};

constexpr runtime::function_type manifest[] = {
    {"fake_http", fake_params, ok_returns,
     "Answers this test's HTTP requests for `method` (nil: any) `url` (a prefix when it ends "
     "in '*') with `status`, `body` and `headers`, `times` times (nil: always), or with an "
     "error of `error_kind`. Rules are tried in the order declared; an unmatched request "
     "fails with `unavailable`. test.http is the table form."},
    {"requests",
     {},
     requests_returns,
     "The HTTP requests this test's processes made, oldest first: {method, url, headers, body}."},
    {"elapsed", {}, seconds_return, "Virtual seconds since the test began."},
    {"_line", fn_param, line_return, "(luad test's driver) the line `fn` is defined on."},
    {"_trace", trace_param, trace_return, "(luad test's driver) `err` with a traceback."},
};

constexpr param_type actual_expected[] = {
    {"actual", "any"}, {"expected", "any"}, {"note", "string?"}};
constexpr param_type value_note[] = {{"value", "any"}, {"note", "string?"}};
constexpr param_type near_params[] = {
    {"actual", "number"}, {"expected", "number"}, {"tolerance", "number?"}, {"note", "string?"}};
constexpr param_type any_return[] = {{"value", "any"}};
constexpr param_type message_param[] = {{"message", "string?"}};
constexpr param_type errors_params[] = {
    {"fn", "function"}, {"expected", "string|table?"}, {"...", "any"}};
constexpr param_type errors_return[] = {{"err", "any"}};
constexpr param_type receive_params[] = {{"topics", "string|string[]?"}, {"timeout", "number?"}};
constexpr param_type receive_return[] = {{"msg", "luad.message"}};
constexpr param_type show_return[] = {{"text", "string"}};
constexpr param_type http_params[] = {{"rule", "table"}};
constexpr param_type module_param[] = {{"module", "string"}};
constexpr param_type list_returns[] = {{"names", "string[]"}, {"permissions", "string[]"}};
constexpr param_type run_params[] = {{"module", "string"}, {"name", "string"}};

constexpr runtime::function_type script_manifest[] = {
    {"equal", actual_expected, any_return,
     "Fails unless `actual` equals `expected`, tables compared deeply; the message lists each "
     "difference by path (.users[2].name: expected \"ada\", got \"bob\")."},
    {"not_equal", actual_expected, any_return, "Fails if `actual` equals `expected` (deeply)."},
    {"truthy", value_note, any_return, "Fails if `value` is nil or false; returns it."},
    {"falsy", value_note, any_return, "Fails unless `value` is nil or false."},
    {"near", near_params, any_return,
     "Fails unless the numbers differ by at most `tolerance` (1e-9)."},
    {"fail", message_param, {}, "Fails the test here with `message`."},
    {"errors", errors_params, errors_return,
     "Calls fn(...) and fails unless it raises an error whose message contains `expected` (a "
     "string) or that has each field of `expected` (a table, e.g. {kind = \"timeout\"}). "
     "Returns the error."},
    {"receive", receive_params, receive_return,
     "The next message on `topics` within `timeout` virtual seconds (5), or the test fails "
     "saying what it waited for."},
    {"no_message",
     receive_params,
     {},
     "Fails if a message on `topics` arrives within `timeout` virtual seconds (1)."},
    {"http", http_params, ok_returns,
     "test.fake_http in table form: {method?, url, status?, body?, json?, headers?, times?, "
     "error?} (json: a table sent as the JSON body; error: an error kind, or {kind, message})."},
    {"show", value_note, show_return, "A value as the assertion messages show it."},
    {"_list", module_param, list_returns,
     "(luad test's driver) the test names of suite `module` in the order written, and its "
     "permissions."},
    {"_run", run_params, {}, "(luad test's driver) setup, test `name` of `module`, teardown."},
};

runtime::module_exports build() {
  return {{{"fake_http", test_fake_http},
           {"requests", test_requests},
           {"elapsed", test_elapsed},
           {"_line", test_line},
           {"_trace", test_trace}},
          {}};
}

}  // namespace

extern const runtime::module_def test_module{"test",
                                             "Assertions and fakes for scripts run by luad test.",
                                             runtime::deterministic,
                                             manifest,
                                             build,
                                             nullptr,
                                             test_source,
                                             script_manifest};

}  // namespace luad::modules
