// Tests of runtime/json.cpp: the C++ codec (output form, determinism, every
// decode error, failures as result<T> of kind invalid).
#include "runtime/json.hpp"

#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>

namespace luad::runtime {
namespace {

std::string encode(const value& v) {
  result<std::string> text = json_encode(v);
  REQUIRE_MESSAGE(text.ok(), text.error().message);
  return *text;
}

// Why encoding `v` fails; the failure is always of kind invalid.
std::string encode_fails(const value& v) {
  result<std::string> text = json_encode(v);
  REQUIRE_FALSE(text.ok());
  CHECK(text.error().kind == error_kind::invalid);
  CHECK_FALSE(text.error().retryable);
  return text.error().message;
}

value decode(std::string_view text) {
  result<value> v = json_decode(text);
  REQUIRE_MESSAGE(v.ok(), v.error().message);
  return *v;
}

// Why decoding `text` fails; the failure is always of kind invalid.
std::string decode_fails(std::string_view text) {
  result<value> v = json_decode(text);
  REQUIRE_FALSE_MESSAGE(v.ok(), text);
  CHECK(v.error().kind == error_kind::invalid);
  CHECK_FALSE(v.error().retryable);
  return v.error().message;
}

std::string nested(int depth) { return std::string(depth, '[') + std::string(depth, ']'); }

TEST_CASE("json codec: encode scalars") {
  CHECK(encode(value{}) == "null");
  CHECK(encode(true) == "true");
  CHECK(encode(false) == "false");
  CHECK(encode(0) == "0");
  CHECK(encode(-5) == "-5");
  CHECK(encode(std::numeric_limits<std::int64_t>::min()) == "-9223372036854775808");
  CHECK(encode(1.0) == "1.0");
  CHECK(encode(-0.0) == "-0.0");
  CHECK(encode(0.1) == "0.1");
  CHECK(encode(1e20) == "1e+20");
  CHECK(encode(1.5e-7) == "1.5e-07");
  CHECK(encode(5e-324) == "5e-324");
  CHECK(encode("") == "\"\"");
}

TEST_CASE("json codec: floats round trip exactly and stay floats") {
  for (double d : {0.1, 1.0 / 3, 1e300, -2.5, 123456789.0, 5e-324, 1.7976931348623157e308}) {
    value back = decode(encode(d));
    REQUIRE(back.get<double>() != nullptr);
    CHECK(*back.get<double>() == d);
  }
  CHECK(std::signbit(*decode(encode(-0.0)).get<double>()));
}

TEST_CASE("json codec: non-finite numbers are refused") {
  CHECK(encode_fails(std::nan("")) == "cannot encode NaN");
  CHECK(encode_fails(std::numeric_limits<double>::infinity()) == "cannot encode infinity");
  CHECK(encode_fails(value::array{-std::numeric_limits<double>::infinity()}) ==
        "cannot encode infinity");
}

TEST_CASE("json codec: strings are escaped per RFC 8259") {
  CHECK(encode("a\"b\\c/d") == R"("a\"b\\c/d")");
  CHECK(encode("\b\f\n\r\t") == R"("\b\f\n\r\t")");
  CHECK(encode(std::string("\0\x1f\x7f", 3)) == "\"\\u0000\\u001f\x7f\"");
  CHECK(encode("h\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80") ==
        "\"h\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"");
}

TEST_CASE("json codec: invalid UTF-8 is refused") {
  for (const char* bad :
       {"\x80", "\xc3", "\xc0\x80", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xe2\x82", "\xff"}) {
    CHECK_MESSAGE(encode_fails(bad) == "string is not valid UTF-8", bad);
  }
  CHECK(encode_fails(value::map{{"\xff", 1}}) == "map key is not valid UTF-8");
}

TEST_CASE("json codec: map keys are sorted bytewise, whatever the insertion order") {
  value a = value::map{{"b", 1}, {"a", 2}, {"\xc3\xa9", 3}, {"Z", 4}, {"", 5}};
  value b = value::map{{"\xc3\xa9", 3}, {"", 5}, {"Z", 4}, {"a", 2}, {"b", 1}};
  CHECK(encode(a) == R"({"":5,"Z":4,"a":2,"b":1,"é":3})");
  CHECK(encode(a) == encode(b));
  CHECK(encode(value::map{{"k", value::map{{"y", 1}, {"x", value::array{}}}}}) ==
        R"({"k":{"x":[],"y":1}})");
  CHECK(encode_fails(value::map{{"a", 1}, {"a", 2}}) == "duplicate map key \"a\"");
}

TEST_CASE("json codec: nil inside containers encodes as null") {
  CHECK(encode(value::array{1, value{}, 3}) == "[1,null,3]");
  CHECK(encode(value::map{{"a", value{}}}) == R"({"a":null})");
}

TEST_CASE("json codec: encode nesting limit") {
  value v = 1;
  for (int i = 0; i < json_max_depth; ++i) v = value::array{v};
  CHECK(encode(v).size() == 2 * json_max_depth + 1);
  v = value::array{v};
  CHECK(encode_fails(v) == "nesting deeper than 200 levels");
}

TEST_CASE("json codec: decode literals and numbers") {
  CHECK(decode("null").is_nil());
  CHECK(decode(" true ") == value(true));
  CHECK(decode("false") == value(false));
  CHECK(decode("0") == value(0));
  CHECK(decode("-0") == value(0));
  CHECK(decode("-12") == value(-12));
  CHECK(decode("9223372036854775807") == value(std::numeric_limits<std::int64_t>::max()));
  CHECK(decode("-9223372036854775808") == value(std::numeric_limits<std::int64_t>::min()));
  CHECK(decode("9223372036854775808") == value(9223372036854775808.0));
  CHECK(decode("1.0") == value(1.0));
  CHECK(decode("1e2") == value(100.0));
  CHECK(decode("1E+2") == value(100.0));
  CHECK(decode("-2.5e-1") == value(-0.25));
  CHECK(decode("1e-400") == value(0.0));
  CHECK(std::signbit(*decode("-1e-400").get<double>()));
  CHECK(decode("0.0000000000000000000001e-400") == value(0.0));
}

TEST_CASE("json codec: decode strings") {
  CHECK(decode(R"("a\"b\\c\/d\b\f\n\r\t")") == value("a\"b\\c/d\b\f\n\r\t"));
  CHECK(decode(R"("\u00e9\u20AC")") == value("\xc3\xa9\xe2\x82\xac"));
  CHECK(decode(R"("\ud83d\ude00")") == value("\xf0\x9f\x98\x80"));
  CHECK(decode(R"("\u0000")") == value(std::string("\0", 1)));
  CHECK(decode("\"h\xc3\xa9\"") == value("h\xc3\xa9"));
  CHECK(decode("\"\x7f\"") == value("\x7f"));
}

TEST_CASE("json codec: decode arrays and objects") {
  CHECK(decode("[]") == value(value::array{}));
  CHECK(decode("{}") == value(value::map{}));
  CHECK(decode(" [ 1 , \"a\" , null , [ ] ] ") ==
        value(value::array{1, "a", value{}, value::array{}}));
  CHECK(decode(R"({"b": {"c": [true]}, "a": 1.5})") ==
        value(value::map{{"b", value::map{{"c", value::array{true}}}}, {"a", 1.5}}));
  CHECK(decode(nested(json_max_depth)).get<value::array>() != nullptr);
}

TEST_CASE("json codec: decode errors say where and what") {
  CHECK(decode_fails("") == "line 1 column 1: unexpected end of input");
  CHECK(decode_fails("  \n ") == "line 2 column 2: unexpected end of input");
  CHECK(decode_fails("[1,\n 2,]") == "line 2 column 4: unexpected character ']'");
  CHECK(decode_fails("[1 2]") == "line 1 column 4: expected ',' or ']'");
  CHECK(decode_fails("[1,") == "line 1 column 4: unexpected end of input");
  CHECK(decode_fails("{\"a\" 1}") == "line 1 column 6: expected ':' after key");
  CHECK(decode_fails("{\"a\":1,}") == "line 1 column 8: expected a string key");
  CHECK(decode_fails("{a:1}") == "line 1 column 2: expected a string key");
  CHECK(decode_fails("{\"a\":1 \"b\":2}") == "line 1 column 8: expected ',' or '}'");
  CHECK(decode_fails("{\"a\":1,\n\"a\":2}") == "line 2 column 1: duplicate key \"a\"");
  CHECK(decode_fails("1 2") == "line 1 column 3: unexpected data after the JSON value");
  CHECK(decode_fails("nul") == "line 1 column 1: unexpected character 'n'");
  CHECK(decode_fails("True") == "line 1 column 1: unexpected character 'T'");
  CHECK(decode_fails("\xef\xbb\xbf{}") == "line 1 column 1: unexpected byte 0xEF");
  CHECK(decode_fails("'a'") == "line 1 column 1: unexpected character '''");
}

TEST_CASE("json codec: decode refuses malformed numbers") {
  CHECK(decode_fails("01") == "line 1 column 1: leading zeros are not allowed");
  CHECK(decode_fails("-01") == "line 1 column 1: leading zeros are not allowed");
  CHECK(decode_fails("-") == "line 1 column 2: expected a digit");
  CHECK(decode_fails("1.") == "line 1 column 3: expected a digit after '.'");
  CHECK(decode_fails("1.e5") == "line 1 column 3: expected a digit after '.'");
  CHECK(decode_fails("1e") == "line 1 column 3: expected a digit in the exponent");
  CHECK(decode_fails("1e+") == "line 1 column 4: expected a digit in the exponent");
  CHECK(decode_fails(".5") == "line 1 column 1: unexpected character '.'");
  CHECK(decode_fails("+1") == "line 1 column 1: unexpected character '+'");
  CHECK(decode_fails("0x10") == "line 1 column 2: unexpected data after the JSON value");
  CHECK(decode_fails("NaN") == "line 1 column 1: unexpected character 'N'");
  CHECK(decode_fails("-Infinity") == "line 1 column 2: expected a digit");
  CHECK(decode_fails("[1e400]") == "line 1 column 2: number out of range");
  CHECK(decode_fails("-1e400") == "line 1 column 1: number out of range");
}

TEST_CASE("json codec: decode refuses malformed strings") {
  CHECK(decode_fails("\"abc") == "line 1 column 5: unterminated string");
  CHECK(decode_fails("\"a\tb\"") ==
        "line 1 column 3: control character in string (must be escaped)");
  CHECK(decode_fails(R"("\x")") == "line 1 column 2: invalid escape in string");
  CHECK(decode_fails(R"("\u12")") == "line 1 column 2: invalid \\u escape (needs 4 hex digits)");
  CHECK(decode_fails(R"("\u12g4")") == "line 1 column 2: invalid \\u escape (needs 4 hex digits)");
  CHECK(decode_fails(R"("\u+123")") == "line 1 column 2: invalid \\u escape (needs 4 hex digits)");
  CHECK(decode_fails(R"("\ude00")") == "line 1 column 2: lone low surrogate in \\u escape");
  CHECK(decode_fails(R"("x\ud83d")") ==
        "line 1 column 3: high surrogate not followed by a low surrogate \\u escape");
  CHECK(decode_fails(R"("\ud83d\u0041")") ==
        "line 1 column 2: high surrogate not followed by a low surrogate \\u escape");
  CHECK(decode_fails("\"\xc3\x28\"") == "line 1 column 2: invalid UTF-8 in string");
  CHECK(decode_fails("\"\xed\xa0\x80\"") == "line 1 column 2: invalid UTF-8 in string");
  CHECK(decode_fails("\"\xc0\xaf\"") == "line 1 column 2: invalid UTF-8 in string");
}

TEST_CASE("json codec: decode nesting limit") {
  CHECK(decode_fails(nested(json_max_depth + 1)) ==
        "line 1 column 201: nesting deeper than 200 levels");
  CHECK(decode_fails(std::string(100000, '[')) ==
        "line 1 column 201: nesting deeper than 200 levels");
  std::string objects;
  for (int i = 0; i <= json_max_depth; ++i) objects += "{\"a\":";
  CHECK(decode_fails(objects) == "line 1 column 1001: nesting deeper than 200 levels");
}

TEST_CASE("json codec: encode then decode gives the value back") {
  value v = value::map{
      {"a", value::array{1, 2.25, "x", true, false, value{}, value::map{}}},
      {"b", value::map{{"nested", value::array{value::array{-1}}}}},
      {"c", "line\nbreak \xf0\x9f\x98\x80"},
      {"d", std::numeric_limits<std::int64_t>::max()},
  };
  CHECK(decode(encode(v)) == v);  // keys were already sorted
  std::string text = R"({"a":[1,2.25,null],"b":{"c":"\u00e9"},"z":-0.5})";
  CHECK(encode(decode(text)) == R"({"a":[1,2.25,null],"b":{"c":"é"},"z":-0.5})");
}

}  // namespace
}  // namespace luad::runtime
