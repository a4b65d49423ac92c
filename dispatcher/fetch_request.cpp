// Parsing and checking fetch.request arguments.
#include "dispatcher/fetch_request.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>

namespace luad::dispatcher {

namespace {

bool is_tchar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) ||
         std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool is_token(std::string_view s, std::size_t max) {
  return !s.empty() && s.size() <= max && std::all_of(s.begin(), s.end(), is_tchar);
}

bool iequal(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

error bad(std::string message) { return error{error_kind::invalid, std::move(message), false, {}}; }

bool number_of(const value& v, double& out) {
  if (const auto* d = v.get<double>()) {
    out = *d;
    return true;
  }
  if (const auto* i = v.get<std::int64_t>()) {
    out = static_cast<double>(*i);
    return true;
  }
  return false;
}

bool seconds_field(const value& v, const char* name, double& out, error& err) {
  if (!number_of(v, out) || !(out > 0) || !std::isfinite(out)) {
    err = bad(std::string(name) + " must be a positive number of seconds");
    return false;
  }
  return true;
}

bool add_header(fetch_request& out, std::string name, const value& v, error& err) {
  std::string text;
  if (const auto* s = v.get<std::string>()) {
    text = *s;
  } else if (const auto* i = v.get<std::int64_t>()) {
    text = std::to_string(*i);
  } else {
    err = bad("header '" + name.substr(0, 100) + "' must have a string value");
    return false;
  }
  if (!valid_header(name, text)) {
    err = bad("bad header '" + name.substr(0, 100) + "' (a token name, no CR/LF/NUL in the value)");
    return false;
  }
  if (iequal(name, "content-length") || iequal(name, "transfer-encoding")) {
    err = bad("header '" + name + "' is set by luad from the body");
    return false;
  }
  out.headers.emplace_back(std::move(name), std::move(text));
  return true;
}

bool headers_field(value& v, fetch_request& out, error& err) {
  if (auto* m = std::get_if<value::map>(&v.data)) {
    for (auto& [name, text] : *m)
      if (!add_header(out, std::move(name), text, err)) return false;
    return true;
  }
  if (auto* a = std::get_if<value::array>(&v.data)) {
    for (value& pair : *a) {
      auto* p = std::get_if<value::array>(&pair.data);
      const std::string* name = p && p->size() == 2 ? (*p)[0].get<std::string>() : nullptr;
      if (!name) {
        err = bad("headers must be a map of name to value, or a list of {name, value} pairs");
        return false;
      }
      if (!add_header(out, *name, (*p)[1], err)) return false;
    }
    return true;
  }
  err = bad("headers must be a map of name to value");
  return false;
}

bool allow_field(value& v, fetch_request& out, error& err) {
  auto* a = std::get_if<value::array>(&v.data);
  if (!a) {
    err = bad("allow must be a list of permissions");
    return false;
  }
  for (value& p : *a) {
    if (auto* s = std::get_if<std::string>(&p.data)) out.allow.push_back(std::move(*s));
  }
  out.check_allow = true;
  return true;
}

// One field of the argument map; false with `err` set when it is bad.
bool apply_field(const std::string& key, value& v, fetch_request& out, error& err) {
  if (v.is_nil()) return true;
  if (key == "url") {
    const auto* s = v.get<std::string>();
    std::string why;
    if (!s) {
      err = bad("url must be a string");
      return false;
    }
    if (!parse_http_url(*s, out.url, why)) {
      err = bad(std::move(why));
      return false;
    }
  } else if (key == "method") {
    const auto* s = v.get<std::string>();
    if (!s || !valid_method(*s)) {
      err = bad("bad method (an HTTP token such as GET or POST expected)");
      return false;
    }
    out.method = *s;
  } else if (key == "headers") {
    return headers_field(v, out, err);
  } else if (key == "body") {
    auto* s = std::get_if<std::string>(&v.data);
    if (!s) {
      err = bad("body must be a string");
      return false;
    }
    out.body = std::move(*s);
  } else if (key == "timeout") {
    return seconds_field(v, "timeout", out.timeout, err);
  } else if (key == "connect_timeout") {
    return seconds_field(v, "connect_timeout", out.connect_timeout, err);
  } else if (key == "max_body") {
    const auto* i = v.get<std::int64_t>();
    if (!i || *i < 0 || static_cast<std::uint64_t>(*i) > fetch_limits::hard_max_body) {
      err = bad("max_body must be 0 to " + std::to_string(fetch_limits::hard_max_body) + " bytes");
      return false;
    }
    out.max_body = static_cast<std::size_t>(*i);
  } else if (key == "redirects") {
    const auto* i = v.get<std::int64_t>();
    if (!i || *i < 0 || *i > fetch_limits::max_redirects) {
      err = bad("redirects must be 0 to " + std::to_string(fetch_limits::max_redirects));
      return false;
    }
    out.redirects = static_cast<int>(*i);
  } else if (key == "verify") {
    const auto* b = v.get<bool>();
    if (!b) {
      err = bad("verify must be a boolean");
      return false;
    }
    out.verify = *b;
  } else if (key == "allow") {
    return allow_field(v, out, err);
  } else {
    err = bad("unknown request field '" + key.substr(0, 100) + "'");
    return false;
  }
  return true;
}

}  // namespace

bool valid_method(std::string_view method) { return is_token(method, 32); }

bool valid_header(std::string_view name, std::string_view text) {
  return is_token(name, 256) && text.find_first_of(std::string_view("\r\n\0", 3)) == text.npos;
}

std::string http_permission(const http_url& url) { return "http:" + url.authority(); }

error permission_error(const http_url& url) {
  return error{error_kind::permission_denied,
               "this process may not make HTTP requests to " + url.authority() +
                   " (grant it with --allow " + http_permission(url) + ")",
               false,
               {}};
}

bool parse_fetch_request(value&& args, fetch_request& out, error& err) {
  auto* m = std::get_if<value::map>(&args.data);
  if (!m) {
    err = bad("fetch.request expects a map of request fields");
    return false;
  }
  bool has_url = false;
  for (auto& [key, v] : *m) {
    if (!apply_field(key, v, out, err)) return false;
    has_url |= key == "url" && !v.is_nil();
  }
  if (!has_url) {
    err = bad("fetch.request needs a url");
    return false;
  }
  return true;
}

}  // namespace luad::dispatcher
