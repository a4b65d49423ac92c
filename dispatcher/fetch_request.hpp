// The fetch.request command: its argument map parsed and checked into a
// fetch_request, and the response map a completion carries back. Plain data,
// shared by the fetch dispatcher and the http module.
#pragma once

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "dispatcher/registry.hpp"
#include "dispatcher/url.hpp"
#include "runtime/command.hpp"
#include "runtime/permissions.hpp"

namespace luad::dispatcher {

/// Limits and defaults of a request (the http module documents the same).
struct fetch_limits {
  static constexpr double default_timeout = 30;          ///< seconds, whole request
  static constexpr double default_connect_timeout = 10;  ///< seconds, DNS + TCP + TLS
  static constexpr std::size_t default_max_body = std::size_t{8} << 20;
  static constexpr std::size_t hard_max_body = std::size_t{64} << 20;
  static constexpr int max_redirects = 10;
  static constexpr std::size_t max_header_bytes = 64 << 10;  ///< response head
};

/// One request, as the dispatcher runs it.
///
/// Command args (a map): `url` (string, required), `method` (string, "GET"),
/// `headers` (map name → string, or array of {name, value} pairs), `body`
/// (string), `timeout` and `connect_timeout` (seconds), `max_body` (bytes),
/// `redirects` (hops to follow, 0-10), `verify` (TLS verification, true), and
/// `allow` (array of permission strings): when present every hop's host:port
/// must be allowed by it (the http module sends it; C++ callers may omit it).
struct fetch_request {
  std::string method = "GET";
  http_url url;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  double timeout = fetch_limits::default_timeout;
  double connect_timeout = fetch_limits::default_connect_timeout;
  std::size_t max_body = fetch_limits::default_max_body;
  int redirects = 0;
  bool verify = true;
  bool check_allow = false;
  runtime::permission_list allow;
};

/// Parses a command's args (moved from, so bodies are not copied). False with
/// an `invalid` error naming the bad field otherwise.
bool parse_fetch_request(value&& args, fetch_request& out, error& err);

/// True when `method` is an HTTP token ("GET", "PATCH", "X-CUSTOM").
bool valid_method(std::string_view method);
/// True when `name` is a header field name and `text` a field value without
/// CR, LF or NUL (a value that would split the request).
bool valid_header(std::string_view name, std::string_view text);

/// The permission a host needs, as `--allow` spells it: "http:host:port".
std::string http_permission(const http_url& url);
/// The error for a host the process may not reach.
error permission_error(const http_url& url);

}  // namespace luad::dispatcher
