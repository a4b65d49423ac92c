// The JSON codec of runtime/json.hpp: a writer with sorted keys and a strict
// RFC 8259 parser that says where the text went wrong.
#include "runtime/json.hpp"

#include "runtime/utf8.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <vector>

namespace luad::runtime {

namespace {

void append_utf8(std::string& out, std::uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

// The two-character escapes of RFC 8259: '\\' + escaped[k] stands for unescaped[k].
constexpr std::string_view escaped = "/\"\\bfnrt";
constexpr std::string_view unescaped = "/\"\\\b\f\n\r\t";
constexpr std::size_t npos = std::string_view::npos;

// ---- encoding -------------------------------------------------------------

class writer {
 public:
  writer(std::string& out, std::string& why) : out_(out), why_(why) {}
  bool write(const value& v, int depth);

 private:
  bool write_string(std::string_view s);
  bool write_double(double d);
  bool write_array(const value::array& a, int depth);
  bool write_map(const value::map& m, int depth);
  bool fail(std::string what) {
    why_ = std::move(what);
    return false;
  }

  std::string& out_;
  std::string& why_;
};

bool writer::write(const value& v, int depth) {
  if (v.is_nil()) {
    out_ += "null";
  } else if (const auto* b = v.get<bool>()) {
    out_ += *b ? "true" : "false";
  } else if (const auto* i = v.get<std::int64_t>()) {
    out_ += std::to_string(*i);
  } else if (const auto* d = v.get<double>()) {
    return write_double(*d);
  } else if (const auto* s = v.get<std::string>()) {
    return write_string(*s);
  } else if (depth >= json_max_depth) {
    return fail("nesting deeper than 200 levels");
  } else if (const auto* a = v.get<value::array>()) {
    return write_array(*a, depth);
  } else {
    return write_map(*v.get<value::map>(), depth);
  }
  return true;
}

bool writer::write_string(std::string_view s) {
  static constexpr char hex[] = "0123456789abcdef";
  out_ += '"';
  for (std::size_t i = 0; i < s.size();) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80) {
      std::size_t n = utf8_sequence(s, i);
      if (n == 0) return fail("string is not valid UTF-8");
      out_.append(s, i, n);
      i += n;
      continue;
    }
    if (std::size_t k = unescaped.find(static_cast<char>(c)); k != 0 && k != npos) {
      out_ += '\\';  // '/' (k == 0) needs no escape
      out_ += escaped[k];
    } else if (c < 0x20) {
      out_ += "\\u00";
      out_ += hex[c >> 4];
      out_ += hex[c & 0xF];
    } else {
      out_ += static_cast<char>(c);
    }
    ++i;
  }
  out_ += '"';
  return true;
}

bool writer::write_double(double d) {
  if (std::isnan(d)) return fail("cannot encode NaN");
  if (std::isinf(d)) return fail("cannot encode infinity");
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, d);  // shortest round trip
  std::string_view s(buf, static_cast<std::size_t>(end - buf));
  out_ += s;
  // "1" would read back as an integer; keep floats floats.
  if (s.find_first_not_of("-0123456789") == std::string_view::npos) out_ += ".0";
  return true;
}

bool writer::write_array(const value::array& a, int depth) {
  out_ += '[';
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (i > 0) out_ += ',';
    if (!write(a[i], depth + 1)) return false;
  }
  out_ += ']';
  return true;
}

bool writer::write_map(const value::map& m, int depth) {
  std::vector<const value::map::value_type*> sorted;
  sorted.reserve(m.size());
  for (const auto& entry : m) sorted.push_back(&entry);
  std::sort(sorted.begin(), sorted.end(), [](auto* a, auto* b) { return a->first < b->first; });
  out_ += '{';
  for (std::size_t i = 0; i < sorted.size(); ++i) {
    if (i > 0) out_ += ',';
    if (!write_string(sorted[i]->first)) return fail("map key is not valid UTF-8");
    if (i > 0 && sorted[i]->first == sorted[i - 1]->first) {  // a valid key, by now
      return fail("duplicate map key \"" + sorted[i]->first + "\"");
    }
    out_ += ':';
    if (!write(sorted[i]->second, depth + 1)) return false;
  }
  out_ += '}';
  return true;
}

// ---- decoding -------------------------------------------------------------

class parser {
 public:
  parser(std::string_view text, std::string& why) : text_(text), why_(why) {}
  bool parse_document(value& out);

 private:
  bool parse_value(value& out, int depth);
  bool parse_array(value& out, int depth);
  bool parse_object(value& out, int depth);
  bool check_duplicates(const value::map& m, const std::vector<std::size_t>& at);
  bool parse_string(std::string& out);
  bool parse_escape(std::string& out);
  bool parse_hex4(std::uint32_t& cp);
  bool parse_number(value& out);
  bool parse_digits();
  bool parse_literal(std::string_view word, value v, value& out);
  bool fail(std::size_t at, std::string_view what);
  bool unexpected();
  void skip_ws() {
    while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\t' ||
                                   text_[pos_] == '\n' || text_[pos_] == '\r')) {
      ++pos_;
    }
  }
  char peek() const { return pos_ < text_.size() ? text_[pos_] : '\0'; }
  bool at_end() const { return pos_ >= text_.size(); }

  std::string_view text_;
  std::string& why_;
  std::size_t pos_ = 0;
};

bool parser::fail(std::size_t at, std::string_view what) {
  std::size_t line = 1, line_start = 0;
  for (std::size_t i = 0; i < at && i < text_.size(); ++i) {
    if (text_[i] == '\n') {
      ++line;
      line_start = i + 1;
    }
  }
  why_ = "line " + std::to_string(line) + " column " + std::to_string(at - line_start + 1) + ": " +
         std::string(what);
  return false;
}

// Fails at the current position, naming what is there.
bool parser::unexpected() {
  if (at_end()) return fail(pos_, "unexpected end of input");
  auto c = static_cast<unsigned char>(text_[pos_]);
  if (c > 0x20 && c < 0x7F)
    return fail(pos_, std::string("unexpected character '") + static_cast<char>(c) + "'");
  static constexpr char hex[] = "0123456789ABCDEF";
  return fail(pos_, std::string("unexpected byte 0x") + hex[c >> 4] + hex[c & 0xF]);
}

bool parser::parse_document(value& out) {
  skip_ws();
  if (!parse_value(out, 0)) return false;
  skip_ws();
  if (!at_end()) return fail(pos_, "unexpected data after the JSON value");
  return true;
}

bool parser::parse_value(value& out, int depth) {
  switch (peek()) {
    case '{': return parse_object(out, depth);
    case '[': return parse_array(out, depth);
    case '"': return parse_string(out.data.emplace<std::string>());
    case 't': return parse_literal("true", value(true), out);
    case 'f': return parse_literal("false", value(false), out);
    case 'n': return parse_literal("null", value(), out);
    default:
      if (peek() == '-' || (peek() >= '0' && peek() <= '9')) return parse_number(out);
      return unexpected();
  }
}

bool parser::parse_literal(std::string_view word, value v, value& out) {
  if (text_.substr(pos_, word.size()) != word) return unexpected();
  pos_ += word.size();
  out = std::move(v);
  return true;
}

bool parser::parse_array(value& out, int depth) {
  if (depth >= json_max_depth) return fail(pos_, "nesting deeper than 200 levels");
  auto& items = out.data.emplace<value::array>();
  ++pos_;  // '['
  skip_ws();
  if (peek() == ']') {
    ++pos_;
    return true;
  }
  while (true) {
    skip_ws();
    if (!parse_value(items.emplace_back(), depth + 1)) return false;
    skip_ws();
    if (peek() == ']') break;
    if (peek() != ',') return at_end() ? unexpected() : fail(pos_, "expected ',' or ']'");
    ++pos_;
  }
  ++pos_;
  return true;
}

bool parser::parse_object(value& out, int depth) {
  if (depth >= json_max_depth) return fail(pos_, "nesting deeper than 200 levels");
  auto& members = out.data.emplace<value::map>();
  std::vector<std::size_t> key_at;  // where each key starts, for duplicate errors
  ++pos_;                           // '{'
  skip_ws();
  if (peek() == '}') {
    ++pos_;
    return true;
  }
  while (true) {
    skip_ws();
    if (peek() != '"') return at_end() ? unexpected() : fail(pos_, "expected a string key");
    key_at.push_back(pos_);
    auto& member = members.emplace_back();
    if (!parse_string(member.first)) return false;
    skip_ws();
    if (peek() != ':') return at_end() ? unexpected() : fail(pos_, "expected ':' after key");
    ++pos_;
    skip_ws();
    if (!parse_value(member.second, depth + 1)) return false;
    skip_ws();
    if (peek() == '}') break;
    if (peek() != ',') return at_end() ? unexpected() : fail(pos_, "expected ',' or '}'");
    ++pos_;
  }
  ++pos_;
  return check_duplicates(members, key_at);
}

bool parser::check_duplicates(const value::map& m, const std::vector<std::size_t>& at) {
  if (m.size() < 2) return true;
  std::vector<std::size_t> order(m.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t a, std::size_t b) { return m[a].first < m[b].first; });
  for (std::size_t i = 1; i < order.size(); ++i) {
    if (m[order[i]].first == m[order[i - 1]].first) {
      return fail(at[order[i]], "duplicate key \"" + m[order[i]].first + "\"");
    }
  }
  return true;
}

bool parser::parse_string(std::string& out) {
  ++pos_;  // '"'
  while (true) {
    std::size_t run = pos_;
    while (run < text_.size() && text_[run] != '"' && text_[run] != '\\' &&
           static_cast<unsigned char>(text_[run]) >= 0x20 &&
           static_cast<unsigned char>(text_[run]) < 0x80) {
      ++run;
    }
    out.append(text_, pos_, run - pos_);
    pos_ = run;
    if (at_end()) return fail(pos_, "unterminated string");
    auto c = static_cast<unsigned char>(text_[pos_]);
    if (c == '"') break;
    if (c == '\\') {
      if (!parse_escape(out)) return false;
    } else if (c < 0x20) {
      return fail(pos_, "control character in string (must be escaped)");
    } else {
      std::size_t n = utf8_sequence(text_, pos_);
      if (n == 0) return fail(pos_, "invalid UTF-8 in string");
      out.append(text_, pos_, n);
      pos_ += n;
    }
  }
  ++pos_;
  return true;
}

bool parser::parse_escape(std::string& out) {
  std::size_t start = pos_++;  // '\\'
  char e = peek();
  ++pos_;
  if (std::size_t k = escaped.find(e); k != npos) {
    out += unescaped[k];
    return true;
  }
  if (e != 'u') return fail(start, "invalid escape in string");
  std::uint32_t cp = 0;
  if (!parse_hex4(cp)) return fail(start, "invalid \\u escape (needs 4 hex digits)");
  if (cp >= 0xDC00 && cp <= 0xDFFF) return fail(start, "lone low surrogate in \\u escape");
  if (cp >= 0xD800 && cp <= 0xDBFF) {
    std::uint32_t low = 0;
    bool paired = text_.substr(pos_, 2) == "\\u";
    if (paired) {
      pos_ += 2;
      paired = parse_hex4(low) && low >= 0xDC00 && low <= 0xDFFF;
    }
    if (!paired) return fail(start, "high surrogate not followed by a low surrogate \\u escape");
    cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
  }
  append_utf8(out, cp);
  return true;
}

bool parser::parse_hex4(std::uint32_t& cp) {
  if (text_.size() - pos_ < 4) return false;
  auto [end, ec] = std::from_chars(text_.data() + pos_, text_.data() + pos_ + 4, cp, 16);
  if (ec != std::errc() || end != text_.data() + pos_ + 4) return false;
  pos_ += 4;
  return true;
}

bool parser::parse_digits() {
  if (peek() < '0' || peek() > '9') return false;
  while (peek() >= '0' && peek() <= '9') ++pos_;
  return true;
}

// True when a number whose conversion was out of range is below 1 in magnitude
// (an underflow, read as zero) rather than above the double range.
bool underflows(std::string_view t) {
  std::size_t e = t.find_first_of("eE");
  std::string_view mantissa = t.substr(0, e);
  long long exp = 0;
  if (e != std::string_view::npos) {
    std::string_view digits = t.substr(e + 1);
    bool neg = !digits.empty() && digits[0] == '-';
    if (!digits.empty() && (digits[0] == '-' || digits[0] == '+')) digits.remove_prefix(1);
    for (char c : digits) exp = std::min(exp * 10 + (c - '0'), 1000000000LL);
    if (neg) exp = -exp;
  }
  std::size_t dot = mantissa.find('.');
  std::size_t first = mantissa.find_first_of("123456789");
  if (dot == std::string_view::npos) dot = mantissa.size();
  long long magnitude =
      first < dot ? static_cast<long long>(dot - first) : -static_cast<long long>(first - dot - 1);
  return magnitude + exp <= 0;
}

bool parser::parse_number(value& out) {
  std::size_t start = pos_;
  if (peek() == '-') ++pos_;
  if (peek() == '0') {
    ++pos_;
    if (peek() >= '0' && peek() <= '9') return fail(start, "leading zeros are not allowed");
  } else if (!parse_digits()) {
    return fail(pos_, "expected a digit");
  }
  bool integral = true;
  if (peek() == '.') {
    ++pos_;
    integral = false;
    if (!parse_digits()) return fail(pos_, "expected a digit after '.'");
  }
  if (peek() == 'e' || peek() == 'E') {
    ++pos_;
    integral = false;
    if (peek() == '+' || peek() == '-') ++pos_;
    if (!parse_digits()) return fail(pos_, "expected a digit in the exponent");
  }
  const char* first = text_.data() + start;
  const char* last = text_.data() + pos_;
  std::int64_t i = 0;
  if (integral && std::from_chars(first, last, i).ec == std::errc()) {
    out = i;
    return true;
  }
  double d = 0;
  if (std::from_chars(first, last, d).ec == std::errc()) {
    out = d;
  } else if (underflows({first, pos_ - start})) {
    out = *first == '-' ? -0.0 : 0.0;
  } else {
    return fail(start, "number out of range");
  }
  return true;
}

}  // namespace

result<std::string> json_encode(const value& v) {
  std::string out, why;
  if (!writer(out, why).write(v, 0)) return fail(error_kind::invalid, std::move(why));
  return out;
}

result<value> json_decode(std::string_view text) {
  value out;
  std::string why;
  if (!parser(text, why).parse_document(out)) return fail(error_kind::invalid, std::move(why));
  return out;
}

}  // namespace luad::runtime
