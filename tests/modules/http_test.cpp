// Tests of the http module end to end: Lua scripts on the shared engine
// against the real Beast server of tests/http_server.hpp on 127.0.0.1.
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <future>
#include <string>
#include <vector>

#include "tests/http_server.hpp"
#include "tests/support.hpp"

namespace luad::test {
namespace {

using runtime::exit_info;
using runtime::exit_reason;
using runtime::value;

// Runs `body` with `base` = the server's URL and `http` required; the process
// holds `perms` (by default just the server's own permission).
exit_info run_http(const http_server& server, const std::string& body,
                   runtime::permission_list perms) {
  runtime::spawn_options opts;
  opts.args = {server.url()};
  opts.ctx.permissions = std::move(perms);
  return run_lua("local http, base = require('http'), ...\n" + body, std::move(opts));
}
exit_info run_http(const http_server& server, const std::string& body) {
  return run_http(server, body, {server.permission()});
}

std::string text(const exit_info& info, std::size_t i) {
  INFO(info.err.message);
  REQUIRE(info.reason == exit_reason::normal);
  REQUIRE(info.results.size() > i);
  const auto* s = info.results[i].get<std::string>();
  return s ? *s : "<not a string>";
}

std::int64_t integer(const exit_info& info, std::size_t i) {
  INFO(info.err.message);
  REQUIRE(info.reason == exit_reason::normal);
  REQUIRE(info.results.size() > i);
  const auto* n = info.results[i].get<std::int64_t>();
  return n ? *n : -1;
}

// Returns err.kind and err.message of a request expected to fail.
constexpr const char* fails = "if r then return 'no error', r.status end\nreturn e.kind, e.message";

TEST_CASE("http: statuses 200, 404 and 500 are responses, with case-insensitive headers") {
  http_server server;
  exit_info info = run_http(server, R"(
    local out = {}
    for _, code in ipairs{200, 404, 500} do
      local r = assert(http.get(base .. '/status/' .. code))
      out[#out + 1] = math.type(r.status) .. ' ' .. r.status .. ' ' .. r.body
    end
    local r = http.get(base .. '/status/200')
    return table.concat(out, ','), r.headers['Content-Length'], r.headers['content-length'],
           r.url
  )");
  CHECK(text(info, 0) == "integer 200 status 200,integer 404 status 404,integer 500 status 500");
  CHECK(text(info, 1) == "10");
  CHECK(text(info, 2) == "10");
  CHECK(text(info, 3) == server.url("/status/200"));
}

TEST_CASE("http: headers are read-only, repeated ones joined, pairs lists lower-case names") {
  http_server server;
  exit_info info = run_http(server, R"(
    local r = assert(http.get(base .. '/multi'))
    local ok = pcall(function() r.headers['x-multi'] = 'c' end)
    local ok2 = pcall(function() r.headers.new = 'c' end)
    local names = {}
    for k in pairs(r.headers) do names[#names + 1] = k end
    table.sort(names)
    return r.headers['X-MULTI'], tostring(ok or ok2), table.concat(names, ' '), r.headers[1]
  )");
  CHECK(text(info, 0) == "a, b");
  CHECK(text(info, 1) == "false");
  CHECK(text(info, 2) == "content-length x-multi");
  CHECK(info.results.at(3).is_nil());
}

TEST_CASE("http: request method, headers and body reach the server") {
  http_server server;
  exit_info info = run_http(server, R"(
    local r = assert(http.request{method = 'PUT', url = base .. '/echo?q=1',
                                  headers = {['X-Test'] = 'yes', ['Content-Type'] = 'text/plain',
                                             ['X-Number'] = 42},
                                  body = 'payload'})
    return r.status, r.body
  )");
  CHECK(integer(info, 0) == 200);
  CHECK(text(info, 1) == "payload");
  http_server::seen req = server.last();
  CHECK(req.method == "PUT");
  CHECK(req.target == "/echo?q=1");
  CHECK(req.body == "payload");
  CHECK(req.header("x-test") == "yes");
  CHECK(req.header("x-number") == "42");
  CHECK(req.header("content-type") == "text/plain");
  CHECK(req.header("content-length") == "7");
  CHECK(req.header("host") == "127.0.0.1:" + std::to_string(server.port()));
  CHECK(req.header("user-agent").starts_with("luad/"));

  info = run_http(server, "local r = assert(http.post(base .. '/echo', 'a=1')) return r.body");
  CHECK(text(info, 0) == "a=1");
  CHECK(server.last().method == "POST");
}

TEST_CASE("http: a chunked response body is reassembled") {
  http_server server;
  exit_info info = run_http(server, "return assert(http.get(base .. '/chunked')).body");
  CHECK(text(info, 0) == "hello, chunked world");
}

TEST_CASE("http: a slow server gives a timeout and the process goes on") {
  http_server server;
  exit_info info = run_http(server, R"(
    local t0 = require('time').monotonic()
    local r, e = http.get(base .. '/slow/3000', {timeout = 0.2})
    local waited = require('time').monotonic() - t0
    local after = assert(http.get(base .. '/status/200'))
    return e.kind, tostring(e.retryable), waited, after.status
  )");
  CHECK(text(info, 0) == "timeout");
  CHECK(text(info, 1) == "true");
  const double* waited = info.results.at(2).get<double>();
  REQUIRE(waited);
  CHECK(*waited >= 0.19);
  CHECK(*waited < 1.0);
  CHECK(integer(info, 3) == 200);
}

TEST_CASE("http: connecting to a server that never accepts times out") {
  // A listener with a backlog of 0 and one connection queued: the kernel drops
  // further SYNs, so a connect hangs until the client gives up.
  int listener = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  REQUIRE(::listen(listener, 0) == 0);
  socklen_t len = sizeof addr;
  REQUIRE(::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  int filler = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(::connect(filler, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  std::string port = std::to_string(ntohs(addr.sin_port));

  runtime::spawn_options opts;
  opts.ctx.permissions = {"http:127.0.0.1:" + port};
  exit_info info = run_lua("local r, e = require('http').get('http://127.0.0.1:" + port +
                               "/', {connect_timeout = 0.2, timeout = 5})\n" + fails,
                           std::move(opts));
  CHECK(text(info, 0) == "timeout");
  CHECK(has(text(info, 1), "connecting to 127.0.0.1:" + port));
  ::close(filler);
  ::close(listener);
}

TEST_CASE("http: a server closing mid-body gives unavailable") {
  http_server server;
  exit_info info =
      run_http(server, "local r, e = http.get(base .. '/truncated')\n" + std::string(fails));
  CHECK(text(info, 0) == "unavailable");
  CHECK(has(text(info, 1), "closed the connection"));
}

TEST_CASE("http: a body over max_body gives limit, one under it arrives whole") {
  http_server server;
  exit_info info = run_http(server, R"(
    local ok = assert(http.get(base .. '/big/100000', {max_body = 100000}))
    local r1, e1 = http.get(base .. '/big/100001', {max_body = 100000})
    local r2, e2 = http.get(base .. '/big/300000?chunked', {max_body = 100000})
    local r3, e3 = http.get(base .. '/big/9000000')  -- the 8 MiB default
    return #ok.body, e1.kind, e2.kind, e3.kind, e1.message
  )");
  CHECK(integer(info, 0) == 100000);
  CHECK(text(info, 1) == "limit");
  CHECK(text(info, 2) == "limit");
  CHECK(text(info, 3) == "limit");
  CHECK(has(text(info, 4), "max_body (100000 bytes)"));
}

TEST_CASE("http: a body larger than the process may hold gives limit") {
  http_server server;
  runtime::spawn_options opts;
  opts.args = {server.url("/big/3000000")};
  opts.ctx.permissions = {server.permission()};
  opts.ctx.limits.memory = std::size_t{2} << 20;
  exit_info info =
      run_lua("local r, e = require('http').get(...)\n" + std::string(fails), std::move(opts));
  CHECK(text(info, 0) == "limit");
  CHECK(has(text(info, 1), "memory limit"));
  CHECK(server.requests() == 1);
}

TEST_CASE("http: a refused connection gives unavailable") {
  int probe = ::socket(AF_INET, SOCK_STREAM, 0);  // a port that was free a moment ago
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(probe, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  socklen_t len = sizeof addr;
  REQUIRE(::getsockname(probe, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  ::close(probe);
  std::string port = std::to_string(ntohs(addr.sin_port));
  runtime::spawn_options opts;
  opts.ctx.permissions = {"http:127.0.0.1:" + port};
  exit_info info =
      run_lua("local r, e = require('http').get('http://127.0.0.1:" + port + "/x')\n" + fails,
              std::move(opts));
  CHECK(text(info, 0) == "unavailable");
  CHECK(has(text(info, 1), "refused"));
}

TEST_CASE("http: a host name that does not resolve gives unavailable") {
  runtime::spawn_options opts;
  opts.ctx.permissions = {"http:nothing-here.invalid"};
  exit_info info =
      run_lua("local r, e = require('http').get('http://nothing-here.invalid/', {timeout = 5})\n" +
                  std::string(fails),
              std::move(opts));
  // `unavailable` when the resolver answers (NXDOMAIN); `timeout` on a machine
  // whose resolver never does. Either way a clear error naming the host.
  CHECK((text(info, 0) == "unavailable" || text(info, 0) == "timeout"));
  CHECK(has(text(info, 1), "nothing-here.invalid"));
}

TEST_CASE("http: bad URLs, schemes, methods and headers give invalid") {
  http_server server;
  exit_info info = run_http(server, R"(
    local kinds = {}
    local function try(req)
      local r, e = http.request(req)
      kinds[#kinds + 1] = r and 'ok' or e.kind
      return e and e.message or ''
    end
    local m1 = try{url = 'not a url'}
    local m2 = try{url = 'ftp://127.0.0.1/'}
    try{url = 'http://'}
    try{url = base .. '/', method = 'GE T'}
    try{url = base .. '/', headers = {['X-Bad'] = 'a\r\nInjected: 1'}}
    try{url = base .. '/', headers = {['Bad Name'] = 'x'}}
    try{url = base .. '/', timeout = -1}
    try{url = base .. '/', redirects = 11}
    return table.concat(kinds, ' '), m1, m2
  )");
  CHECK(text(info, 0) == "invalid invalid invalid invalid invalid invalid invalid invalid");
  CHECK(has(text(info, 1), "bad URL"));
  CHECK(has(text(info, 2), "unsupported scheme 'ftp'"));
  CHECK(server.requests() == 0);
}

TEST_CASE("http: arguments of the wrong type raise") {
  http_server server;
  for (const char* call :
       {"http.get(true)", "http.get(base, 'x')", "http.request{}",
        "http.request{url = base, timeout = 'soon'}", "http.request{url = base, max_body = 1.5}",
        "http.post(base, {})", "http.get(base, {method = 'POST'})",
        "http.request{url = base, [1] = 2}"}) {
    INFO(std::string(call));
    exit_info info = run_http(server, std::string(call));
    CHECK(info.reason == exit_reason::error);
  }
  exit_info typo = run_http(server, "http.get(base, {timout = 1})");
  CHECK(has(typo.err.message, "unknown option 'timout'"));
  CHECK(server.accepted() == 0);
}

TEST_CASE("http: without permission nothing connects") {
  http_server server;
  exit_info info = run_http(server, "local r, e = http.get(base .. '/')\n" + std::string(fails),
                            {"http:127.0.0.1:1", "http:example.org"});
  CHECK(text(info, 0) == "permission_denied");
  CHECK(has(text(info, 1), "--allow " + server.permission()));
  info = run_http(server, "local r, e = http.get(base .. '/')\n" + std::string(fails), {});
  CHECK(text(info, 0) == "permission_denied");
  CHECK(server.accepted() == 0);
}

TEST_CASE("http: redirects are followed only when asked, each hop permitted") {
  http_server server;
  exit_info info = run_http(server, R"(
    local r0 = assert(http.get(base .. '/redirect/3'))
    local r3 = assert(http.get(base .. '/redirect/3', {redirects = 3}))
    local _, e2 = http.get(base .. '/redirect/3', {redirects = 2})
    return r0.status, r0.headers.location, r3.status, r3.body, r3.url, e2.kind
  )");
  CHECK(integer(info, 0) == 302);
  CHECK(text(info, 1) == "/redirect/2");
  CHECK(integer(info, 2) == 200);
  CHECK(text(info, 3) == "landed");
  CHECK(text(info, 4) == server.url("/redirect/0"));
  CHECK(text(info, 5) == "limit");

  // A hop to another host name needs its own permission.
  std::string elsewhere = "http://localhost:" + std::to_string(server.port()) + "/status/201";
  std::string script = "local r, e = http.get(base .. '/goto/302?" + elsewhere +
                       "', {redirects = 1})\n"
                       "if r then return r.status, r.url end\nreturn e.kind, e.message";
  info = run_http(server, script);
  CHECK(text(info, 0) == "permission_denied");
  CHECK(has(text(info, 1), "localhost:" + std::to_string(server.port())));
  int requests = server.requests();
  info = run_http(server, script,
                  {server.permission(), "http:localhost:" + std::to_string(server.port())});
  CHECK(integer(info, 0) == 201);
  CHECK(text(info, 1) == elsewhere);
  CHECK(server.requests() == requests + 2);

  // 303 turns a POST into a GET without a body; 307 repeats both.
  info = run_http(server, R"(
    local a = assert(http.post(base .. '/goto/303?/echo', 'data', {redirects = 1}))
    local b = assert(http.post(base .. '/goto/307?/echo', 'data', {redirects = 1}))
    return a.body, b.body
  )");
  CHECK(text(info, 0) == "");
  CHECK(text(info, 1) == "data");
  CHECK(server.last().method == "POST");
}

TEST_CASE("http: sequential requests from one process reuse one connection") {
  http_server server;
  exit_info info = run_http(server, R"(
    for i = 1, 5 do assert(http.get(base .. '/status/200')) end
    assert(http.post(base .. '/echo', 'x'))
    return 'done'
  )");
  CHECK(text(info, 0) == "done");
  CHECK(server.requests() == 6);
  CHECK(server.accepted() == 1);
  // A connection the server closed after answering is not reused.
  info = run_http(server, R"(
    assert(http.get(base .. '/close'))
    return assert(http.get(base .. '/status/200')).status
  )");
  CHECK(integer(info, 0) == 200);
  CHECK(server.accepted() == 2);
}

TEST_CASE("http: killing a process mid-request closes its connection") {
  http_server server;
  server::engine& eng = shared_engine();
  runtime::spawn_options opts;
  opts.args = {server.url()};
  opts.ctx.permissions = {server.permission()};
  runtime::pid id;
  auto done = spawn_lua(eng, "local http, base = require('http'), ...\nhttp.get(base .. '/hang')",
                        std::move(opts), &id);
  REQUIRE(eventually([&] { return server.requests() == 1; }));
  CHECK(eng.fetch().snapshot().in_flight == 1);
  REQUIRE(eng.scheduler().kill(id));
  CHECK(wait_exit(done, std::chrono::seconds(10)).reason == exit_reason::killed);
  CHECK(eventually([&] { return server.closed() == 1; }));
  CHECK(eventually([&] { return eng.fetch().snapshot().in_flight == 0; }));
}

TEST_CASE("http: 1,000 processes request at once") {
  http_server server;
  const int n = 1000 / sanitizer_scale;
  std::vector<std::future<exit_info>> exits;
  exits.reserve(n);
  for (int i = 0; i < n; ++i) {
    runtime::spawn_options opts;
    opts.args = {server.url("/slow/20"), value(std::to_string(i))};
    opts.ctx.permissions = {server.permission()};
    exits.push_back(spawn_lua(shared_engine(), R"(
      local url, me = ...
      local r = assert(require('http').post(url, me))
      return r.status, r.body
    )",
                              std::move(opts)));
  }
  int ok = 0;
  for (int i = 0; i < n; ++i) {
    exit_info info = wait_exit(exits[i]);
    if (info.reason == exit_reason::normal && info.results.size() == 2 &&
        info.results[0] == value(200) && info.results[1] == value(std::to_string(i))) {
      ++ok;
    } else {
      INFO(info.err.message);
      CHECK(false);
    }
  }
  CHECK(ok == n);
  CHECK(server.requests() == n);
  CHECK(server.peak_busy() <= 256);  // the global cap on requests in flight
  CHECK(server.peak_busy() > 1);
}

TEST_CASE("http: TLS verifies certificates unless http:insecure allows turning it off") {
  http_server server(/*tls=*/true);
  std::string get = "local r, e = http.get(base .. '/status/200'";
  exit_info info = run_http(server, get + ")\n" + fails);
  CHECK(text(info, 0) == "unavailable");
  CHECK(has(text(info, 1), "certificate verify failed"));

  info = run_http(server, get + ", {tls = {verify = false}})\n" + fails);
  CHECK(text(info, 0) == "permission_denied");
  CHECK(has(text(info, 1), "http:insecure"));

  int before = server.accepted();
  info = run_http(server, get + ", {tls = {verify = false}})\nreturn r.status, r.body",
                  {server.permission(), "http:insecure"});
  CHECK(integer(info, 0) == 200);
  CHECK(text(info, 1) == "status 200");
  CHECK(server.accepted() == before + 1);
}

}  // namespace
}  // namespace luad::test
