// The lexical scan for literal requires and the class check over a workflow's
// files (class_check.hpp).
#include "server/class_check.hpp"

#include <cctype>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "modules/modules.hpp"
#include "runtime/package.hpp"

namespace luad::server {

namespace fs = std::filesystem;

namespace {

// A cursor over Lua source that counts lines.
struct lexer {
  std::string_view s;
  std::size_t i = 0;
  int line = 1;

  bool done() const { return i >= s.size(); }
  char at(std::size_t k = 0) const { return i + k < s.size() ? s[i + k] : '\0'; }
  void advance(std::size_t n = 1) {
    for (; n > 0 && i < s.size(); --n, ++i)
      if (s[i] == '\n') ++line;
  }
  // At '[': the level of a long bracket ("[==[" is 2), or -1 if it is not one.
  int long_bracket() const {
    std::size_t k = 1;
    while (at(k) == '=') ++k;
    return at(k) == '[' ? static_cast<int>(k - 1) : -1;
  }
  // Skips a long string or comment body opened at '[' of `level`; its text.
  std::string_view skip_long(int level) {
    advance(static_cast<std::size_t>(level) + 2);
    std::string close = "]" + std::string(static_cast<std::size_t>(level), '=') + "]";
    std::size_t end = s.find(close, i);
    if (end == std::string_view::npos) end = s.size();
    std::string_view body = s.substr(i, end - i);
    advance(end - i + close.size());
    return body;
  }
  // Skips a quoted string opened at `q`; its raw text (escapes kept as written).
  std::string_view skip_quoted() {
    char q = at();
    advance();
    std::size_t start = i;
    while (!done() && at() != q && at() != '\n') advance(at() == '\\' ? 2 : 1);
    std::string_view body = s.substr(start, i - start);
    advance();
    return body;
  }
  void skip_space() {
    while (!done() && std::isspace(static_cast<unsigned char>(at()))) advance();
  }
  // Skips whitespace and comments.
  void skip_blank() {
    for (;;) {
      skip_space();
      if (at() != '-' || at(1) != '-') return;
      advance(2);
      if (at() == '[' && long_bracket() >= 0) {
        skip_long(long_bracket());
      } else {
        while (!done() && at() != '\n') advance();
      }
    }
  }
  // The string literal at the cursor (after skip_blank), or nullopt.
  bool literal(std::string& out) {
    if (at() == '"' || at() == '\'') {
      out = skip_quoted();
      return out.find('\\') == std::string::npos;  // escapes: not a plain name
    }
    if (at() == '[' && long_bracket() >= 0) {
      out = skip_long(long_bracket());
      return true;
    }
    return false;
  }
};

bool ident_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

std::string read_file(const fs::path& p, bool& ok) {
  std::ifstream in(p, std::ios::binary);
  ok = static_cast<bool>(in);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// The file package `name` below `root` (a.b: a/b.lua, then a/b/init.lua), or "".
fs::path package_file(const fs::path& root, const std::string& name) {
  if (!runtime::package_name_problem(name).empty()) return {};
  std::string rel = name;
  for (char& c : rel)
    if (c == '.') c = '/';
  std::error_code ec;
  for (const fs::path& p : {root / (rel + ".lua"), root / rel / "init.lua"})
    if (fs::is_regular_file(p, ec)) return p;
  return {};
}

}  // namespace

std::vector<required_name> literal_requires(std::string_view source) {
  std::vector<required_name> found;
  lexer lx{source};
  if (source.starts_with("#")) {  // a shebang line
    while (!lx.done() && lx.at() != '\n') lx.advance();
  }
  char before = '\0';  // the last significant character before a word
  while (!lx.done()) {
    lx.skip_blank();
    if (lx.done()) break;
    char c = lx.at();
    if (c == '"' || c == '\'') {
      lx.skip_quoted();
      before = c;
    } else if (c == '[' && lx.long_bracket() >= 0) {
      lx.skip_long(lx.long_bracket());
      before = ']';
    } else if (ident_char(c)) {
      std::size_t start = lx.i;
      while (!lx.done() && ident_char(lx.at())) lx.advance();
      std::string_view word = source.substr(start, lx.i - start);
      if (word == "require" && before != '.' && before != ':') {
        int line = lx.line;
        lx.skip_blank();
        bool paren = lx.at() == '(';
        if (paren) {
          lx.advance();
          lx.skip_blank();
        }
        std::string name;
        if (lx.literal(name)) {
          lx.skip_blank();
          if (!paren || lx.at() == ')') found.push_back({name, line});
        }
      }
      before = 'a';
    } else {
      before = c;
      lx.advance();
    }
  }
  return found;
}

std::vector<std::string> class_problems(const workflow_config& w,
                                        std::span<const runtime::module_def* const> modules) {
  std::vector<std::string> problems;
  fs::path root = fs::path(w.script).parent_path();
  std::set<fs::path> seen;
  std::vector<fs::path> todo{w.script};
  while (!todo.empty()) {
    fs::path file = todo.back();
    todo.pop_back();
    if (!seen.insert(file).second) continue;
    bool ok = false;
    std::string source = read_file(file, ok);
    if (!ok) continue;
    for (const required_name& r : literal_requires(source)) {
      const runtime::module_def* def = nullptr;
      for (const runtime::module_def* m : modules)
        if (m->name == r.name) def = m;
      if (!def) {
        fs::path next = package_file(root, r.name);
        if (!next.empty()) todo.push_back(next);
        continue;
      }
      if ((def->classes & ~w.classes) == 0) continue;
      problems.push_back(file.string() + ":" + std::to_string(r.line) + ": workflow " + w.name +
                         ": require '" + r.name + "' needs classes (" +
                         runtime::class_names(def->classes) + ") but the workflow's classes are (" +
                         runtime::class_names(w.classes) + ")");
    }
  }
  return problems;
}

std::vector<std::string> class_problems(const config& c) {
  std::vector<std::string> all;
  for (const workflow_config& w : c.workflows)
    for (std::string& p : class_problems(w, modules::all())) all.push_back(std::move(p));
  return all;
}

}  // namespace luad::server
