// HTTP(S) URLs as the fetch dispatcher and the http module need them: scheme,
// host, port and request target, parsed with Boost.URL; and redirect targets
// (a Location header) resolved against the URL that produced them.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace luad::dispatcher {

/// An absolute http:// or https:// URL, split for connecting.
struct http_url {
  bool tls = false;    ///< https
  std::string host;    ///< a name or an IP address, IPv6 without brackets, lower case
  std::uint16_t port;  ///< explicit, or 80/443 by scheme
  std::string target;  ///< path and query as sent in the request line ("/" when empty)
  std::string text;    ///< the whole URL without its fragment

  /// "host:port" ("[::1]:8080" for IPv6), as errors and permissions name it.
  std::string authority() const;
  /// The Host header: the host, plus ":port" when the port is not the scheme's default.
  std::string host_header() const;
};

/// Parses an absolute http(s) URL. False with a reason in `why` (for an
/// `invalid` error) on bad syntax, another scheme, no host, user info or port 0.
bool parse_http_url(std::string_view text, http_url& out, std::string& why);

/// Resolves a redirect's Location (absolute or relative) against `base`.
bool resolve_location(const http_url& base, std::string_view location, http_url& out,
                      std::string& why);

}  // namespace luad::dispatcher
