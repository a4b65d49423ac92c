// The bounded pattern matcher against stock Lua 5.4.4: the same results and
// error messages over curated and generated (subject, pattern, init, repl)
// cases, and its step budget.
#include <doctest/doctest.h>

#include <chrono>
#include <random>
#include <string>
#include <vector>

#include "runtime/bounded_lib.hpp"
#include "runtime/pattern.hpp"
#include "tests/lua_state.hpp"

namespace {

using luad::test::lua;

// Runs one case and serialises what it returned or raised.
constexpr const char* k_driver = R"lua(
local function ser(...)
  local out = {}
  for i = 1, select('#', ...) do
    local v = select(i, ...)
    out[i] = type(v) == 'string' and ('%q'):format(v) or tostring(v)
  end
  return table.concat(out, ',')
end
local tbl = setmetatable({a = 'T', ab = false, [''] = 'E', b = 7}, {__index = function(_, k)
  if k == 'x' then return {} end
end})
local function fn(...)
  local a = ...
  if a == 'b' then return nil end
  if a == 'x' then return {} end
  return '<' .. ser(...) .. '>'
end
local kinds = {
  find = function(s, p, i) return ser(string.find(s, p, i)) end,
  plain = function(s, p, i) return ser(string.find(s, p, i, true)) end,
  match = function(s, p, i) return ser(string.match(s, p, i)) end,
  gmatch = function(s, p, i)
    local out, n = {}, 0
    for a, b, c in string.gmatch(s, p, i) do
      n = n + 1
      out[n] = ser(a, b, c)
      if n > 100 then break end
    end
    return table.concat(out, ';')
  end,
  gsub = function(s, p, i, r) return ser(string.gsub(s, p, r, i)) end,
  gsub_t = function(s, p, i) return ser(string.gsub(s, p, tbl, i)) end,
  gsub_f = function(s, p, i) return ser(string.gsub(s, p, fn, i)) end,
}
function run(kind, s, p, i, r)
  local ok, res = pcall(kinds[kind], s, p, i, r)
  return (ok and 'ok ' or 'error ') .. tostring(res)
end
)lua";

struct pair_of_states {
  lua stock, ours;
  pair_of_states() {
    lua_getglobal(ours.L, "string");
    luad::runtime::install_bounded_string(ours.L, -1);
    lua_pop(ours.L, 1);
    stock.run(k_driver);
    ours.run(k_driver);
  }

  static std::string call(lua_State* L, const char* kind, const std::string& s,
                          const std::string& p, const std::string* init, const std::string& r) {
    lua_getglobal(L, "run");
    lua_pushstring(L, kind);
    lua_pushlstring(L, s.data(), s.size());
    lua_pushlstring(L, p.data(), p.size());
    if (init && !init->empty())
      lua_pushinteger(L, std::stoll(*init));
    else
      lua_pushnil(L);
    lua_pushlstring(L, r.data(), r.size());
    if (lua_pcall(L, 5, 1, 0) != LUA_OK)
      return std::string("driver failed: ") + lua_tostring(L, -1);
    std::size_t n = 0;
    const char* text = lua_tolstring(L, -1, &n);
    std::string out(text, n);
    lua_pop(L, 1);
    return out;
  }

  // Checks one case in every kind; returns the number of mismatches.
  int same(const std::string& s, const std::string& p, const std::string& init,
           const std::string& r) {
    static const char* const kinds[] = {"find", "plain",  "match", "gmatch",
                                        "gsub", "gsub_t", "gsub_f"};
    int bad = 0;
    for (const char* kind : kinds) {
      std::string a = call(stock.L, kind, s, p, &init, r);
      std::string b = call(ours.L, kind, s, p, &init, r);
      if (a != b) {
        ++bad;
        if (bad < 5)
          FAIL_CHECK(kind << " s=" << s << " p=" << p << " init=" << init << " r=" << r
                          << "\n stock: " << a << "\n ours:  " << b);
      }
    }
    return bad;
  }
};

const std::vector<std::string> k_patterns = {
    "",
    "a",
    "^a",
    "a$",
    "^$",
    "$",
    "^",
    "a*",
    "a+",
    "a-",
    "a?",
    ".",
    ".-",
    ".*b",
    "%a+",
    "%d+",
    "%s*(.-)%s*$",
    "%w+",
    "%W",
    "%l%u",
    "%p",
    "%c",
    "%x%x",
    "%z",
    "%g",
    "[abc]",
    "[^abc]",
    "[a-c]+",
    "[%a%d]",
    "[]]",
    "[^]]",
    "[a-]",
    "[-a]",
    "[%]]",
    "[a%-z]",
    "(a)",
    "()",
    "(a)()",
    "((a)(b))",
    "(a*(.)%w(%s*))",
    "%b()",
    "%b(",
    "%bxy",
    "%f[%a]%a+",
    "%f[%A]",
    "%f[%z]",
    "%f[a",
    "%fa",
    "(a)%1",
    "(a*)%1",
    "%1",
    "(a)%2",
    "%0",
    "(()",
    "())",
    "(a",
    "a)",
    "%",
    "a%",
    "[a",
    "[^",
    "[a%",
    "[%",
    "(.-)%-",
    "a.-b",
    "x*$",
    "^(%w+)=(%w+)$",
    "(%w+)=(%w+)",
    "[%w_]+",
    "%.",
    "%%",
    "%$",
    "%^",
    "a%$",
    "$a",
    "^^",
    "a^",
    "%[",
    "[[]",
    "[%[]",
    "(x?)+",
    "%bab",
    "(h)(e)(l)(l)(o)(%s)(w)(o)(r)(l)(d)",
    "%f[%w]%w+%f[%W]",
    "[\0-\3]+",
    std::string("a\0b", 3),
    std::string("%z+", 3),
    std::string("[\0]", 3),
};

const std::vector<std::string> k_subjects = {
    "",
    "a",
    "aaa",
    "ab",
    "abc",
    "banana",
    "hello world",
    "  trim me  ",
    "x = 1, y = 22",
    "key=value",
    "(a(b)c)",
    "((()))(",
    "f(x, g(y))",
    "THE (quick) fox",
    "a.b.c",
    "%d%%",
    "[]]^$",
    "xyz123",
    "\t\n\v",
    std::string("a\0b\0c", 5),
    "ALLCAPS and lower",
    "éàü",
    "hello",
    "aaaaaaaaaaab",
};

const std::vector<std::string> k_inits = {"", "1", "2", "-1", "-3", "0", "5", "20", "-20"};
const std::vector<std::string> k_repls = {"",   "x", "%0", "%1", "[%1|%2]",
                                          "%%", "%", "%a", "%9", "<%0%0>"};

}  // namespace

TEST_CASE("the bounded matcher agrees with stock Lua on curated cases") {
  pair_of_states st;
  int bad = 0, cases = 0;
  for (const auto& p : k_patterns)
    for (const auto& s : k_subjects)
      for (std::size_t i = 0; i < k_inits.size(); i += (p.size() % 3) + 1) {
        const std::string& r = k_repls[(s.size() + p.size() + i) % k_repls.size()];
        bad += st.same(s, p, k_inits[i], r);
        ++cases;
      }
  CHECK(bad == 0);
  CHECK(cases > 2000);
}

TEST_CASE("the bounded matcher agrees with stock Lua on generated cases") {
  pair_of_states st;
  std::mt19937 rng(12);
  static const char pattern_alphabet[] = "ab.()%[]^$*+-?1 2dwsxfbaA";
  static const char subject_alphabet[] = "aab()[] %1xy.A";
  auto pick = [&](const char* alphabet, std::size_t n, std::size_t max_len) {
    std::string out(rng() % (max_len + 1), ' ');
    for (char& c : out) c = alphabet[rng() % n];
    return out;
  };
  int bad = 0;
  for (int i = 0; i < 6000 && bad < 5; ++i) {
    std::string p = pick(pattern_alphabet, sizeof pattern_alphabet - 1, 7);
    std::string s = pick(subject_alphabet, sizeof subject_alphabet - 1, 10);
    bad += st.same(s, p, k_inits[rng() % k_inits.size()], k_repls[rng() % k_repls.size()]);
  }
  CHECK(bad == 0);
}

TEST_CASE("the bounded matcher agrees with stock Lua at the recursion and capture limits") {
  pair_of_states st;
  std::string deep;
  for (int i = 0; i < 250; ++i) deep += "a?";
  std::string caps32, caps33;
  for (int i = 0; i < 32; ++i) caps32 += "(a)";
  caps33 = caps32 + "(a)";
  std::string as(300, 'a');
  CHECK(st.same(as, deep, "", "x") == 0);        // "pattern too complex"
  CHECK(st.same(as, caps32, "", "%9") == 0);     // 32 captures are fine
  CHECK(st.same(as, caps33, "", "%1") == 0);     // 33 are "too many captures"
  CHECK(st.same(as, "(a*)%1$", "", "%1") == 0);  // back-reference over a long capture
  CHECK(st.same(std::string(50, '('), "%b()", "", "") == 0);
}

// The classes are a table of bits (not <cctype> calls): every class letter,
// both cases, alone, in a set and negated, over a subject of all 256 bytes,
// and escapes that name no class (the character itself).
TEST_CASE("the bounded matcher agrees with stock Lua on every class for every byte") {
  pair_of_states st;
  std::string all_bytes;
  for (int c = 0; c < 256; ++c) all_bytes += static_cast<char>(c);
  int bad = 0, cases = 0;
  for (char cl : std::string("acdglpsuwxzACDGLPSUWXZ.%]-^$qQ9")) {
    std::string item = std::string("%") + cl;
    for (const std::string& p :
         {item, item + "+", "[" + item + "]", "[^" + item + "]", "[x" + item + "0-3]"}) {
      bad += st.same(all_bytes, p, "", "<%0>");
      ++cases;
    }
  }
  CHECK(bad == 0);
  CHECK(cases == 31 * 5);
}

TEST_CASE("a backtracking pattern stops at its step budget with a limit error" *
          doctest::test_suite("serial")) {
  lua l;
  lua_getglobal(l.L, "string");
  luad::runtime::install_bounded_string(l.L, -1);
  lua_pop(l.L, 1);
  auto saved = luad::runtime::pattern_budget();
  luad::runtime::set_pattern_budget(2'000'000);
  auto start = std::chrono::steady_clock::now();
  l.run(R"(
    local s = ('a'):rep(500)
    for _, f in ipairs{string.find, string.match, function(a, b) return string.gsub(a, b, 'x') end} do
      local ok, err = pcall(f, s, '.-.-.-b')
      assert(not ok and type(err) == 'table', tostring(err))
      assert(err.kind == 'limit' and err.message:find('pattern too complex', 1, true))
    end
    local ok, err = pcall(string.gmatch(('a'):rep(500), '.-.-.-b'))
    assert(not ok and err.kind == 'limit')
    -- an ordinary scan of a long subject is not cut short
    assert(select(2, (('ab '):rep(200000)):gsub('%w+', '%0')) == 200000)
  )");
  auto took = std::chrono::steady_clock::now() - start;
  luad::runtime::set_pattern_budget(saved);
  CHECK(took < std::chrono::seconds(2));
}

TEST_CASE("the bounded string.rep returns an empty result at once and agrees otherwise") {
  pair_of_states st;
  const char* code = R"(
    local t0 = os.clock()
    local r = {('').rep('', 1e12), ('x'):rep(3, ','), ('ab'):rep(0), ('a'):rep(-1), ('').rep('', 5, '')}
    local ok, err = pcall(string.rep, 'x', 1 << 62)
    r[#r + 1] = tostring(ok) .. tostring(err)
    result = table.concat(r, '|') .. (os.clock() - t0 < 0.5 and '' or ' slow')
  )";
  lua_getglobal(st.ours.L, "string");
  lua_getglobal(st.ours.L, "string");
  luad::runtime::install_bounded_string(st.ours.L, -1);
  lua_pop(st.ours.L, 2);
  st.ours.run(code);
  lua_getglobal(st.ours.L, "result");
  CHECK(std::string(lua_tostring(st.ours.L, -1)) == "|x,x,x||||falseresulting string too large");
}
