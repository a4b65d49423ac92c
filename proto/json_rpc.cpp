// JSON-RPC framing, validation, replies and value conversion (json_rpc.hpp).
#include "proto/json_rpc.hpp"

#include <cmath>
#include <cstdint>
#include <limits>

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

std::variant<request, request_error> parse_request(std::string_view line) {
  boost::system::error_code ec;
  json::value v = json::parse(line, ec);
  if (ec) return request_error{nullptr, error_code::parse_error, "not JSON: " + ec.message()};
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

std::string frame(const json::value& v) {
  std::string text = json::serialize(v);
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
    json::value operator()(const std::string& s) const { return json::string(s); }
    json::value operator()(const runtime::value::array& a) const {
      json::array out;
      out.reserve(a.size());
      for (const auto& e : a) out.push_back(to_json(e));
      return out;
    }
    json::value operator()(const runtime::value::map& m) const {
      json::object out;
      for (const auto& [k, e] : m) out[k] = to_json(e);
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

json::object exit_json(const runtime::exit_info& e) {
  return std::move(to_json(runtime::exit_value(e)).as_object());
}

}  // namespace luad::proto
