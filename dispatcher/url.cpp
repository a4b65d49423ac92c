// http(s) URL parsing and redirect resolution on top of Boost.URL.
#include "dispatcher/url.hpp"

#include <boost/url/parse.hpp>
#include <boost/url/url.hpp>

#include <algorithm>
#include <cctype>
#include <charconv>

namespace luad::dispatcher {

namespace urls = boost::urls;

namespace {

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

bool from_view(const urls::url_view_base& u, http_url& out, std::string& why) {
  std::string scheme = lower(std::string(u.scheme()));
  if (scheme != "http" && scheme != "https") {
    why = scheme.empty() ? "URL has no scheme (expected http:// or https://)"
                         : "unsupported scheme '" + scheme + "' (http and https only)";
    return false;
  }
  if (!u.has_authority() || u.host_type() == urls::host_type::none || u.encoded_host().empty()) {
    why = "URL has no host";
    return false;
  }
  if (u.has_userinfo()) {
    why = "user info in URLs is not supported (send an Authorization header)";
    return false;
  }
  if (u.host_type() == urls::host_type::ipvfuture) {
    why = "IPvFuture hosts are not supported";
    return false;
  }
  out.tls = scheme == "https";
  // host_address() drops IPv6 brackets and percent-decodes a name.
  out.host = lower(std::string(u.host_address()));
  if (out.host.find_first_of(std::string_view("\0\r\n /", 5)) != std::string::npos) {
    why = "bad characters in the URL's host";
    return false;
  }
  out.port = out.tls ? 443 : 80;
  if (u.has_port() && !u.port().empty()) {  // "http://host:/" means the default port
    // port_number() wraps values over 65535, so read the digits ourselves.
    std::string_view digits = u.port();
    unsigned port = 0;
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), port);
    if (ec != std::errc() || end != digits.data() + digits.size() || port == 0 || port > 65535) {
      why = "bad port in URL (1-65535)";
      return false;
    }
    out.port = static_cast<std::uint16_t>(port);
  }
  std::string_view target = u.encoded_target();
  out.target = target.empty() ? "/" : std::string(target);
  if (out.target.front() != '/') out.target.insert(out.target.begin(), '/');
  urls::url copy(u);
  copy.remove_fragment();
  out.text = std::string(copy.buffer());
  return true;
}

}  // namespace

std::string http_url::authority() const {
  std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  return h + ":" + std::to_string(port);
}

std::string http_url::host_header() const {
  std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  if (port != (tls ? 443 : 80)) h += ":" + std::to_string(port);
  return h;
}

bool parse_http_url(std::string_view text, http_url& out, std::string& why) {
  auto parsed = urls::parse_uri(text);
  if (!parsed) {
    why = "bad URL '" + std::string(text.substr(0, 200)) + "': " + parsed.error().message();
    return false;
  }
  return from_view(*parsed, out, why);
}

bool resolve_location(const http_url& base, std::string_view location, http_url& out,
                      std::string& why) {
  auto ref = urls::parse_uri_reference(location);
  if (!ref) {
    why = "bad redirect Location '" + std::string(location.substr(0, 200)) +
          "': " + ref.error().message();
    return false;
  }
  auto b = urls::parse_uri(base.text);
  if (!b) {
    why = "bad base URL for a redirect";
    return false;
  }
  urls::url dest;
  auto r = urls::resolve(*b, *ref, dest);
  if (!r) {
    why = "cannot resolve redirect Location '" + std::string(location.substr(0, 200)) +
          "': " + r.error().message();
    return false;
  }
  return from_view(dest, out, why);
}

}  // namespace luad::dispatcher
