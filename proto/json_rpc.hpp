// The wire protocol as code (proto/PROTOCOL.md is its reference): framing of
// newline-delimited JSON-RPC 2.0 lines, request validation, the error codes,
// reply builders and runtime::value <-> JSON. Shared by the daemon, the client
// and the tests, so the format is written once.
#pragma once

#include <boost/json.hpp>

#include <string>
#include <string_view>
#include <variant>

#include "runtime/limits.hpp"
#include "runtime/value.hpp"

namespace luad::proto {

namespace json = boost::json;

/// The `code` of an error reply: JSON-RPC's standard codes, then luad's.
enum class error_code : int {
  parse_error = -32700,       ///< the line is not JSON
  invalid_request = -32600,   ///< JSON, but not a request (no method, too long, not an object)
  method_not_found = -32601,  ///< no method of that name
  invalid_params = -32602,    ///< a parameter is missing, of the wrong type or out of range
  failed = -32000,            ///< the method ran and failed (out of memory, a config error, …)
  denied = -32001,            ///< the peer or its profile may not do this
  not_found = -32004,         ///< no such process, name, profile, script or workflow
};

/// The reply code for a method that failed with `kind` (invalid → invalid_params,
/// not_found → not_found, permission_denied → denied, everything else → failed).
error_code code_of(runtime::error_kind kind);

/// A request line that passed validation.
struct request {
  json::value id;  ///< any JSON value (null when absent); echoed in the reply
  std::string method;
  json::object params;  ///< empty when absent
};

/// Why a line is not a request, with the id to answer (null if unknown).
struct request_error {
  json::value id;
  error_code code;
  std::string message;
};

/// Validates one line (without its '\n'): a JSON object with a string
/// `method` and, if present, object `params`. A blank line is neither a
/// request nor an error: check is_blank first.
std::variant<request, request_error> parse_request(std::string_view line);

/// True for a line of only spaces, tabs and '\r' (ignored by the daemon).
bool is_blank(std::string_view line);

/// `v` serialized, plus the '\n' that ends every line of the protocol. The
/// line is always strict JSON (RFC 8259, UTF-8): when `v` holds a string or
/// key that is not valid UTF-8 or a non-finite double (however it got there:
/// a log line, an error message, an echoed id of 1e999), those are repaired
/// first, strings with U+FFFD and doubles as null. Values meant to survive
/// byte for byte go through to_json/bytes_json before they reach here.
std::string frame(const json::value& v);

/// Text for people (a message, a traceback): `s`, with bytes that are not
/// valid UTF-8 replaced by U+FFFD.
json::string text_json(std::string_view s);
/// Bytes a script produced: `s` as a JSON string when it is valid UTF-8,
/// else {"$bytes": "<base64 of s>"}, losslessly.
json::value bytes_json(std::string_view s);

/// {"jsonrpc":"2.0","id":id,"method":method,"params":params}
json::object make_request(json::value id, std::string_view method, json::object params = {});
/// {"jsonrpc":"2.0","id":id,"result":result}
json::object result_reply(const json::value& id, json::value result);
/// {"jsonrpc":"2.0","id":id,"error":{"code":code,"message":message}}
json::object error_reply(const json::value& id, error_code code, std::string_view message);
/// An error reply for a method failure: the code from code_of(e.kind) and
/// e.message; the error object also carries "kind" (e.g. "not_found").
json::object error_reply(const json::value& id, const runtime::error& e);
/// {"jsonrpc":"2.0","method":method,"params":params}: a notification (no id).
json::object notification(std::string_view method, json::value params);

/// A value as JSON: nil → null, maps → objects (insertion order), arrays,
/// strings (through bytes_json: not valid UTF-8 → {"$bytes": base64}),
/// booleans, integers, doubles (non-finite → null). A map key that is not
/// valid UTF-8 becomes "$bytes:<base64>".
json::value to_json(const runtime::value& v);
/// JSON as a value: null → nil, integers that fit int64 stay integers, larger
/// unsigned ones become doubles.
runtime::value from_json(const json::value& j);
/// runtime::exit_value(e) as JSON: the one exit shape of every reply.
/// `results` through to_json; text fields (message, traceback) through text_json.
json::object exit_json(const runtime::exit_info& e);

}  // namespace luad::proto
