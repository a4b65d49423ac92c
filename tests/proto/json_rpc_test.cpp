// proto/json_rpc: request validation and its error codes, framing, reply
// builders, value <-> JSON and the exit shape, without a daemon.
#include "proto/json_rpc.hpp"

#include <doctest/doctest.h>

#include <cstdint>
#include <limits>
#include <string>
#include <variant>

namespace json = boost::json;
namespace proto = luad::proto;
namespace runtime = luad::runtime;

namespace {

// The request_error of a line that must not parse as a request.
proto::request_error refused(std::string_view line) {
  auto parsed = proto::parse_request(line);
  REQUIRE(std::holds_alternative<proto::request_error>(parsed));
  return std::get<proto::request_error>(parsed);
}

proto::request accepted(std::string_view line) {
  auto parsed = proto::parse_request(line);
  if (auto* e = std::get_if<proto::request_error>(&parsed)) FAIL("refused: " << e->message);
  return std::get<proto::request>(parsed);
}

int code(proto::error_code c) { return static_cast<int>(c); }

}  // namespace

TEST_CASE("json_rpc: the error codes are JSON-RPC's and luad's numbers") {
  CHECK(code(proto::error_code::parse_error) == -32700);
  CHECK(code(proto::error_code::invalid_request) == -32600);
  CHECK(code(proto::error_code::method_not_found) == -32601);
  CHECK(code(proto::error_code::invalid_params) == -32602);
  CHECK(code(proto::error_code::failed) == -32000);
  CHECK(code(proto::error_code::denied) == -32001);
  CHECK(code(proto::error_code::not_found) == -32004);
  CHECK(proto::code_of(runtime::error_kind::invalid) == proto::error_code::invalid_params);
  CHECK(proto::code_of(runtime::error_kind::not_found) == proto::error_code::not_found);
  CHECK(proto::code_of(runtime::error_kind::permission_denied) == proto::error_code::denied);
  CHECK(proto::code_of(runtime::error_kind::internal) == proto::error_code::failed);
  CHECK(proto::code_of(runtime::error_kind::limit) == proto::error_code::failed);
}

TEST_CASE("json_rpc: a good request, with and without params, echoes any id") {
  proto::request r =
      accepted(R"({"jsonrpc":"2.0","id":7,"method":"spawn","params":{"source":"return 1"}})");
  CHECK(r.id == json::value(7));
  CHECK(r.method == "spawn");
  CHECK(r.params.at("source") == "return 1");
  r = accepted(R"({"method":"ping"})");  // "jsonrpc" is not checked; no id is a null id
  CHECK(r.id.is_null());
  CHECK(r.params.empty());
  CHECK(accepted(R"({"id":"abc","method":"ping"})").id == json::value("abc"));
  CHECK(accepted(R"({"id":{"n":[1,2]},"method":"ping"})").id == json::parse(R"({"n":[1,2]})"));
  CHECK(accepted(" {\"id\":1,\"method\":\"ping\"}\r").method == "ping");  // CRLF clients
}

TEST_CASE("json_rpc: lines that are not requests get their code, and the id when known") {
  proto::request_error e = refused("not json at all");
  CHECK(e.code == proto::error_code::parse_error);
  CHECK(e.id.is_null());
  CHECK(refused(std::string("\x01\x02\xff\xfe garbage", 12)).code ==
        proto::error_code::parse_error);
  CHECK(refused(R"({"id":1,"method":"ping")").code == proto::error_code::parse_error);  // cut off
  e = refused("[1,2,3]");
  CHECK(e.code == proto::error_code::invalid_request);
  CHECK(refused("42").code == proto::error_code::invalid_request);
  CHECK(refused(R"("ping")").code == proto::error_code::invalid_request);
  e = refused(R"({"id":5})");
  CHECK(e.code == proto::error_code::invalid_request);
  CHECK(e.id == json::value(5));  // answered with its id
  CHECK(e.message == R"("method" (a string) is required)");
  CHECK(refused(R"({"id":5,"method":3})").code == proto::error_code::invalid_request);
  e = refused(R"({"id":"x","method":"spawn","params":[1]})");
  CHECK(e.code == proto::error_code::invalid_params);
  CHECK(e.id == json::value("x"));
  CHECK(refused(R"({"id":1,"method":"spawn","params":null})").code ==
        proto::error_code::invalid_params);
  CHECK(refused(R"({"id":1,"method":"spawn","params":"a"})").code ==
        proto::error_code::invalid_params);
}

TEST_CASE("json_rpc: blank lines are neither requests nor errors") {
  CHECK(proto::is_blank(""));
  CHECK(proto::is_blank(" \t\r"));
  CHECK_FALSE(proto::is_blank(" x "));
  CHECK_FALSE(proto::is_blank("{}"));
}

TEST_CASE("json_rpc: frame is one line ending in one newline, even around newlines in strings") {
  std::string line = proto::frame(json::value("two\nlines"));
  CHECK(line == "\"two\\nlines\"\n");
  line = proto::frame(proto::make_request(1, "spawn", {{"source", "a\nb"}}));
  REQUIRE(!line.empty());
  CHECK(line.back() == '\n');
  CHECK(line.find('\n') == line.size() - 1);
  // What frame sends, parse_request reads back (without its '\n').
  proto::request r = accepted(std::string_view(line).substr(0, line.size() - 1));
  CHECK(r.id == json::value(1));
  CHECK(r.method == "spawn");
  CHECK(r.params.at("source") == "a\nb");
}

TEST_CASE("json_rpc: requests, replies and notifications have the JSON-RPC 2.0 shape") {
  CHECK(proto::make_request("q", "ping") ==
        json::parse(R"({"jsonrpc":"2.0","id":"q","method":"ping","params":{}})"));
  CHECK(proto::result_reply(3, "pong") ==
        json::parse(R"({"jsonrpc":"2.0","id":3,"result":"pong"})"));
  CHECK(proto::result_reply(nullptr, true) ==
        json::parse(R"({"jsonrpc":"2.0","id":null,"result":true})"));
  CHECK(
      proto::error_reply(4, proto::error_code::method_not_found, "unknown method 'fly'") ==
      json::parse(
          R"({"jsonrpc":"2.0","id":4,"error":{"code":-32601,"message":"unknown method 'fly'"}})"));
  json::object n = proto::notification("log", json::object{{"pid", "0.7"}});
  CHECK(n == json::parse(R"({"jsonrpc":"2.0","method":"log","params":{"pid":"0.7"}})"));
  CHECK_FALSE(n.contains("id"));  // a notification is never an answer
}

TEST_CASE("json_rpc: a method failure's error carries its kind and the code of that kind") {
  json::object r = proto::error_reply(
      json::value("i"),
      runtime::error{runtime::error_kind::not_found, "no process 0.9", false, {}});
  CHECK(r == json::parse(R"({"jsonrpc":"2.0","id":"i","error":)"
                         R"({"code":-32004,"message":"no process 0.9","kind":"not_found"}})"));
  r = proto::error_reply(1,
                         runtime::error{runtime::error_kind::permission_denied, "no", false, {}});
  CHECK(r.at("error").at("code") == -32001);
  CHECK(r.at("error").at("kind") == "permission_denied");
  r = proto::error_reply(1, runtime::error{runtime::error_kind::unavailable, "down", true, {}});
  CHECK(r.at("error").at("code") == -32000);
  CHECK(r.at("error").at("kind") == "unavailable");
}

TEST_CASE("json_rpc: values go to JSON and back, integers staying integers") {
  runtime::value::map inner{{"z", 1}, {"a", runtime::value::array{true, runtime::value()}}};
  runtime::value v = runtime::value::map{
      {"int", std::int64_t{-42}},
      {"big", std::numeric_limits<std::int64_t>::max()},
      {"small", std::numeric_limits<std::int64_t>::min()},
      {"float", 0.5},
      {"whole_float", 2.0},
      {"text", "h\u00e9\"llo\n"},
      {"no", false},
      {"list", runtime::value::array{1, "two", 3.25}},
      {"nested", runtime::value::map{{"inner", inner}}},
  };
  json::value j = proto::to_json(v);
  CHECK(j.at("int").is_int64());
  CHECK(j.at("float").is_double());
  CHECK(j.at("whole_float").is_double());  // a Lua float stays a float
  CHECK(j.at("nested").at("inner").at("a").at(1).is_null());
  CHECK(j.as_object().begin()->key() == "int");  // insertion order
  CHECK(proto::from_json(j) == v);
  // Through text, as the wire carries it.
  json::value back = json::parse(json::serialize(j));
  CHECK(proto::from_json(back) == v);
  CHECK(back.at("big").is_int64());
  CHECK(back.at("whole_float").is_double());
}

TEST_CASE("json_rpc: unsigned and non-finite numbers") {
  // Past int64: a double (Lua has no unsigned integers).
  json::value huge = json::parse("18446744073709551615");
  REQUIRE(huge.is_uint64());
  runtime::value v = proto::from_json(huge);
  REQUIRE(v.get<double>());
  CHECK(*v.get<double>() == doctest::Approx(1.8446744073709552e19));
  // An unsigned value that fits int64 (built in C++, as counters are) stays an integer.
  v = proto::from_json(json::value(std::uint64_t{7}));
  REQUIRE(v.get<std::int64_t>());
  CHECK(*v.get<std::int64_t>() == 7);
  v = proto::from_json(json::value(std::uint64_t{1} << 63));
  CHECK(v.get<double>());
  CHECK(proto::from_json(json::value(nullptr)).is_nil());
  CHECK(proto::to_json(std::numeric_limits<double>::infinity()).is_null());
  CHECK(proto::to_json(std::numeric_limits<double>::quiet_NaN()).is_null());
  CHECK(proto::to_json(runtime::value()).is_null());
}

TEST_CASE("json_rpc: the exit shape of a normal exit and of failed ones") {
  runtime::exit_info ok;
  ok.id = runtime::pid{0, 12};
  ok.results = {42, "x", runtime::value::map{{"k", 1.5}}};
  CHECK(proto::exit_json(ok) ==
        json::parse(R"({"pid":"0.12","reason":"normal","results":[42,"x",{"k":1.5}]})"));
  ok.results.clear();
  CHECK(proto::exit_json(ok).at("results").as_array().empty());  // present, if empty

  runtime::exit_info failed;
  failed.id = runtime::pid{0, 13};
  failed.reason = runtime::exit_reason::error;
  failed.err = runtime::error{runtime::error_kind::unavailable, "db down", true, "stack"};
  json::object e = proto::exit_json(failed);
  CHECK(e == json::parse(R"({"pid":"0.13","reason":"error","kind":"unavailable",)"
                         R"("message":"db down","retryable":true,"traceback":"stack"})"));
  CHECK_FALSE(e.contains("results"));

  runtime::exit_info killed;
  killed.id = runtime::pid{0, 14};
  killed.reason = runtime::exit_reason::killed;
  killed.err = runtime::error{runtime::error_kind::canceled, "enough", false, {}};
  e = proto::exit_json(killed);
  CHECK(e.at("reason") == "killed");
  CHECK(e.at("retryable") == false);     // always there for a failed exit
  CHECK_FALSE(e.contains("traceback"));  // only when there is one
}

TEST_CASE("json_rpc: bytes that are not UTF-8 are sent losslessly as {\"$bytes\": base64}") {
  using runtime::value;
  CHECK(proto::to_json(value("héllo")) == "héllo");
  CHECK(proto::to_json(value(std::string("a\0b", 3))) == json::string(std::string("a\0b", 3)));
  CHECK(proto::to_json(value("\xFF\xFE")) == json::parse(R"({"$bytes":"//4="})"));
  CHECK(proto::to_json(value("\xC0\xAF")) == json::parse(R"({"$bytes":"wK8="})"));
  CHECK(proto::to_json(value("\xED\xA0\x80")) == json::parse(R"({"$bytes":"7aCA"})"));
  // Nested, and as a map key.
  json::value nested = proto::to_json(
      value(value::map{{"list", value::array{value("\xFF"), value(1)}}, {"\xFE", value(true)}}));
  CHECK(nested == json::parse(R"({"list":[{"$bytes":"/w=="},1],"$bytes:/g==":true})"));
  CHECK(json::parse(proto::frame(nested)) == nested);  // and the line is strict JSON
}

TEST_CASE("json_rpc: frame always writes strict JSON, whatever the value holds") {
  // Built by hand, past to_json: a log message cut mid-character, an echoed
  // id of 1e999 (Boost.JSON parses it as infinity), a NaN in a stat.
  json::object o{{"message", json::string("cut \xE2\x82")},
                 {"id", std::numeric_limits<double>::infinity()},
                 {"stat", std::numeric_limits<double>::quiet_NaN()},
                 {"\xFF"
                  "key",
                  json::array{json::string("\xC0\xAF"), 1.5}},
                 {"nul", json::string(std::string("a\0b", 3))}};
  std::string line = proto::frame(o);
  REQUIRE(line.back() == '\n');
  line.pop_back();
  boost::system::error_code ec;
  json::value back = json::parse(line, ec);  // strict: rejects NaN and invalid UTF-8
  REQUIRE_FALSE(ec);
  CHECK(back.at("message") == "cut \xEF\xBF\xBD\xEF\xBF\xBD");
  CHECK(back.at("id").is_null());
  CHECK(back.at("stat").is_null());
  CHECK(back.at("\xEF\xBF\xBD"
                "key") == json::parse(R"(["\ufffd\ufffd",1.5])"));
  CHECK(line.find("a\\u0000b") != std::string::npos);  // NUL escaped
  // What is already valid goes out untouched.
  CHECK(proto::frame(json::value("ü")) == "\"ü\"\n");
}

TEST_CASE("json_rpc: an exit's results are lossless, its message and traceback repaired text") {
  runtime::exit_info ok;
  ok.id = runtime::pid{0, 1};
  ok.results = {"\xFF", std::numeric_limits<double>::quiet_NaN()};
  CHECK(proto::exit_json(ok).at("results") == json::parse(R"([{"$bytes":"/w=="},null])"));
  runtime::exit_info failed;
  failed.id = runtime::pid{0, 2};
  failed.reason = runtime::exit_reason::error;
  failed.err = runtime::error{runtime::error_kind::runtime, "bad \xFF", false, "at \xFE"};
  json::object e = proto::exit_json(failed);
  CHECK(e.at("message") == "bad \xEF\xBF\xBD");
  CHECK(e.at("traceback") == "at \xEF\xBF\xBD");
}
