// Permission parsing and matching (see permissions.hpp for the forms).
#include "runtime/permissions.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>

namespace luad::runtime {

namespace {

bool iequal(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

bool valid_port(std::string_view text, std::uint16_t& port) {
  unsigned v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || v == 0 || v > 65535) return false;
  port = static_cast<std::uint16_t>(v);
  return true;
}

// "HOST" or "HOST:PORT" (an IPv6 host in brackets: "[::1]:8080").
bool split_host_port(std::string_view rest, std::string_view& host,
                     std::optional<std::uint16_t>& port) {
  std::size_t colon = rest.rfind(':');
  bool bracketed = !rest.empty() && rest.front() == '[';
  if (colon != std::string_view::npos && (!bracketed || rest[colon - 1] == ']')) {
    std::uint16_t p;
    if (!valid_port(rest.substr(colon + 1), p)) return false;
    host = rest.substr(0, colon);
    port = p;
  } else {
    host = rest;
  }
  if (host.size() > 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  return !host.empty();
}

bool valid_namespace(std::string_view ns) {
  return !ns.empty() && ns.size() <= 64 && std::all_of(ns.begin(), ns.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.';
  });
}

}  // namespace

bool valid_owner(std::string_view owner) {
  if (owner.starts_with("uid:")) {
    std::string_view n = owner.substr(4);
    return !n.empty() && n.size() <= 10 &&
           std::all_of(n.begin(), n.end(), [](char c) { return c >= '0' && c <= '9'; });
  }
  return owner.starts_with("workflow:") && owner.size() > 9;
}

std::string check_permission(std::string_view text) {
  if (text.starts_with("http:")) {
    std::string_view rest = text.substr(5);
    std::string_view host;
    std::optional<std::uint16_t> port;
    if (rest == "*" || rest == "insecure" || split_host_port(rest, host, port)) return {};
    return "bad http permission '" + std::string(text) + "': expected http:HOST, http:HOST:PORT, " +
           "http:* or http:insecure";
  }
  if (text.starts_with("store:")) {
    if (valid_namespace(text.substr(6))) return {};
    return "bad store permission '" + std::string(text) +
           "': the namespace is 1-64 letters, digits, '_', '-' or '.'";
  }
  if (text.starts_with("process:")) {
    std::string_view rest = text.substr(8);
    for (std::string_view verb : {std::string_view("control"), std::string_view("send")}) {
      if (rest == verb) return {};
      if (rest.starts_with(verb) && rest.size() > verb.size() + 1 && rest[verb.size()] == ':' &&
          valid_owner(rest.substr(verb.size() + 1)))
        return {};
    }
    return "bad process permission '" + std::string(text) +
           "': expected process:control, process:send, process:control:OWNER or "
           "process:send:OWNER (OWNER is uid:N or workflow:NAME)";
  }
  return "unknown permission '" + std::string(text) + "' (known: http:..., store:..., process:...)";
}

bool allows_http(const permission_list& perms, std::string_view host, std::uint16_t port) {
  for (const std::string& p : perms) {
    if (!p.starts_with("http:")) continue;
    std::string_view rest = std::string_view(p).substr(5);
    if (rest == "*") return true;
    if (rest == "insecure") continue;
    std::string_view h;
    std::optional<std::uint16_t> want;
    if (!split_host_port(rest, h, want)) continue;
    if (iequal(h, host) && (!want || *want == port)) return true;
  }
  return false;
}

bool allows_insecure_tls(const permission_list& perms) {
  return std::find(perms.begin(), perms.end(), "http:insecure") != perms.end();
}

bool allows_store(const permission_list& perms, std::string_view ns) {
  for (const std::string& p : perms)
    if (p.starts_with("store:") && std::string_view(p).substr(6) == ns) return true;
  return false;
}

bool allows_process(const permission_list& perms, std::string_view verb, std::string_view owner) {
  for (const std::string& p : perms) {
    if (!p.starts_with("process:")) continue;
    std::string_view rest = std::string_view(p).substr(8);
    // control covers send: who may kill a process may also write to it.
    for (std::string_view granted : {verb, std::string_view("control")}) {
      if (rest == granted) return true;
      if (rest.size() == granted.size() + 1 + owner.size() && rest.starts_with(granted) &&
          rest[granted.size()] == ':' && rest.ends_with(owner))
        return true;
    }
  }
  return false;
}

std::optional<std::string> default_store_namespace(const permission_list& perms) {
  for (const std::string& p : perms)
    if (p.starts_with("store:")) return p.substr(6);
  return std::nullopt;
}

}  // namespace luad::runtime
