// JSON-RPC framing, validation, replies and value conversion (json_rpc.hpp).
#include "proto/json_rpc.hpp"

#include <cmath>
#include <cstdint>
#include <limits>

#include "runtime/utf8.hpp"

namespace luad::proto {

error_code code_of(runtime::error_kind kind) {
  switch (kind) {
    case runtime::error_kind::invalid: return error_code::invalid_params;
    case runtime::error_kind::not_found: return error_code::not_found;
    case runtime::error_kind::permission_denied: return error_code::denied;
    default: return error_code::failed;
  }
}

bool is_blank(std::string_view line) {
  return line.find_first_not_of(" \t\r") == std::string_view::npos;
}

namespace {

// True when `v` holds a number the parser read as infinite (1e400): Boost 1.81
// gives ±inf for those, and would serialize an echo of them as "Infinity",
// which is not JSON. (The parser's depth limit bounds this recursion.)
bool has_infinite(const json::value& v) {
  switch (v.kind()) {
    case json::kind::double_: return !std::isfinite(v.get_double());
    case json::kind::array:
      for (const auto& e : v.get_array())
        if (has_infinite(e)) return true;
      return false;
    case json::kind::object:
      for (const auto& [k, e] : v.get_object())
        if (has_infinite(e)) return true;
      return false;
    default: return false;
  }
}

}  // namespace

std::variant<request, request_error> parse_request(std::string_view line) {
  boost::system::error_code ec;
  json::value v = json::parse(line, ec);
  if (ec) return request_error{nullptr, error_code::parse_error, "not JSON: " + ec.message()};
  if (has_infinite(v))
    return request_error{nullptr, error_code::parse_error, "not JSON: a number out of range"};
  if (!v.is_object())
    return request_error{nullptr, error_code::invalid_request, "a request is a JSON object"};
  json::object& o = v.get_object();
  request r;
  if (const json::value* id = o.if_contains("id")) r.id = *id;
  const json::value* method = o.if_contains("method");
  if (!method || !method->is_string())
    return request_error{r.id, error_code::invalid_request, "\"method\" (a string) is required"};
  r.method = std::string(method->get_string());
  if (json::value* params = o.if_contains("params")) {
    if (!params->is_object())
      return request_error{r.id, error_code::invalid_params, "\"params\" must be an object"};
    r.params = std::move(params->get_object());
  }
  return r;
}

namespace {

// RFC 4648 base64 with padding.
std::string base64(std::string_view in) {
  static constexpr char digits[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  std::size_t i = 0;
  auto byte = [&](std::size_t k) {
    return static_cast<std::uint32_t>(static_cast<unsigned char>(in[k]));
  };
  for (; i + 3 <= in.size(); i += 3) {
    std::uint32_t n = byte(i) << 16 | byte(i + 1) << 8 | byte(i + 2);
    for (int shift : {18, 12, 6, 0}) out += digits[(n >> shift) & 63];
  }
  if (std::size_t left = in.size() - i; left > 0) {
    std::uint32_t n = byte(i) << 16 | (left == 2 ? byte(i + 1) << 8 : 0);
    out += digits[(n >> 18) & 63];
    out += digits[(n >> 12) & 63];
    out += left == 2 ? digits[(n >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

// True when serializing `v` gives strict JSON: every string and key valid
// UTF-8, every double finite (Boost.JSON would write raw bytes and NaN).
bool wire_safe(const json::value& v) {
  switch (v.kind()) {
    case json::kind::double_: return std::isfinite(v.get_double());
    case json::kind::string: return runtime::valid_utf8(v.get_string());
    case json::kind::array:
      for (const auto& e : v.get_array())
        if (!wire_safe(e)) return false;
      return true;
    case json::kind::object:
      for (const auto& [k, e] : v.get_object())
        if (!runtime::valid_utf8(k) || !wire_safe(e)) return false;
      return true;
    default: return true;
  }
}

// Makes `v` wire_safe in place: text repaired (U+FFFD), non-finite → null.
void make_wire_safe(json::value& v) {
  switch (v.kind()) {
    case json::kind::double_:
      if (!std::isfinite(v.get_double())) v = nullptr;
      return;
    case json::kind::string:
      if (!runtime::valid_utf8(v.get_string())) v = text_json(v.get_string());
      return;
    case json::kind::array:
      for (auto& e : v.get_array()) make_wire_safe(e);
      return;
    case json::kind::object: {
      json::object& o = v.get_object();
      bool keys_ok = true;
      for (auto& [k, e] : o) {
        keys_ok = keys_ok && runtime::valid_utf8(k);
        make_wire_safe(e);
      }
      if (keys_ok) return;
      json::object fixed;
      for (auto& [k, e] : o) fixed[runtime::utf8_repaired(k)] = std::move(e);
      v = std::move(fixed);
      return;
    }
    default: return;
  }
}

}  // namespace

json::string text_json(std::string_view s) {
  if (runtime::valid_utf8(s)) return json::string(s);
  return json::string(runtime::utf8_repaired(s));
}

json::value bytes_json(std::string_view s) {
  if (runtime::valid_utf8(s)) return json::string(s);
  return json::object{{"$bytes", base64(s)}};
}

std::string frame(const json::value& v) {
  std::string text;
  if (wire_safe(v)) {
    text = json::serialize(v);
  } else {  // the last guard: whatever reached here, the line stays JSON
    json::value fixed = v;
    make_wire_safe(fixed);
    text = json::serialize(fixed);
  }
  text += '\n';
  return text;
}

json::object make_request(json::value id, std::string_view method, json::object params) {
  return json::object{
      {"jsonrpc", "2.0"}, {"id", std::move(id)}, {"method", method}, {"params", std::move(params)}};
}

json::object result_reply(const json::value& id, json::value result) {
  return json::object{{"jsonrpc", "2.0"}, {"id", id}, {"result", std::move(result)}};
}

json::object error_reply(const json::value& id, error_code code, std::string_view message) {
  json::object e{{"code", static_cast<int>(code)}, {"message", message}};
  return json::object{{"jsonrpc", "2.0"}, {"id", id}, {"error", std::move(e)}};
}

json::object error_reply(const json::value& id, const runtime::error& err) {
  json::object reply = error_reply(id, code_of(err.kind), err.message);
  reply["error"].get_object()["kind"] = runtime::kind_name(err.kind);
  return reply;
}

json::object notification(std::string_view method, json::value params) {
  return json::object{{"jsonrpc", "2.0"}, {"method", method}, {"params", std::move(params)}};
}

json::value to_json(const runtime::value& v) {
  struct visitor {
    json::value operator()(std::monostate) const { return nullptr; }
    json::value operator()(bool b) const { return b; }
    json::value operator()(std::int64_t i) const { return i; }
    json::value operator()(double d) const {
      return std::isfinite(d) ? json::value(d) : json::value(nullptr);
    }
    json::value operator()(const std::string& s) const { return bytes_json(s); }
    json::value operator()(const runtime::value::array& a) const {
      json::array out;
      out.reserve(a.size());
      for (const auto& e : a) out.push_back(to_json(e));
      return out;
    }
    json::value operator()(const runtime::value::map& m) const {
      json::object out;
      for (const auto& [k, e] : m) {
        if (runtime::valid_utf8(k))
          out[k] = to_json(e);
        else
          out["$bytes:" + base64(k)] = to_json(e);
      }
      return out;
    }
  };
  return std::visit(visitor{}, v.data);
}

runtime::value from_json(const json::value& j) {
  switch (j.kind()) {
    case json::kind::null: return {};
    case json::kind::bool_: return j.get_bool();
    case json::kind::int64: return j.get_int64();
    case json::kind::uint64: {  // the parser makes uint64 only past int64; C++ code may not
      std::uint64_t u = j.get_uint64();
      if (u <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
        return static_cast<std::int64_t>(u);
      return static_cast<double>(u);
    }
    case json::kind::double_: return j.get_double();
    case json::kind::string: return std::string(j.get_string());
    case json::kind::array: {
      runtime::value::array a;
      a.reserve(j.get_array().size());
      for (const auto& e : j.get_array()) a.push_back(from_json(e));
      return a;
    }
    case json::kind::object: {
      runtime::value::map m;
      for (const auto& [k, e] : j.get_object()) m.emplace_back(std::string(k), from_json(e));
      return m;
    }
  }
  return {};
}

// The results are values (lossless, see to_json); every other field is text
// for people (message, traceback), repaired rather than encoded.
json::object exit_json(const runtime::exit_info& e) {
  runtime::value v = runtime::exit_value(e);
  json::object out;
  if (const auto* m = v.get<runtime::value::map>()) {
    for (const auto& [k, field] : *m) {
      if (const auto* s = field.get<std::string>(); s && k != "results")
        out[k] = text_json(*s);
      else
        out[k] = to_json(field);
    }
  }
  return out;
}

}  // namespace luad::proto
