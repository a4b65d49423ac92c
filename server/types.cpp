// `luad types`: renders LuaLS definition files from the module manifests, the
// shared classes they refer to, an example .luarc.json and a .luacheckrc that
// knows only the sandbox's globals, and writes them into one folder.
#include "server/types.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <optional>
#include <ostream>
#include <string_view>
#include <system_error>
#include <utility>

#include "modules/modules.hpp"
#include "runtime/json.hpp"
#include "runtime/value.hpp"

namespace luad::server {

namespace {

namespace fs = std::filesystem;

// --- the sandbox's globals (mirror of runtime/sandbox.cpp) -------------------

constexpr const char* coroutine_fields[] = {"close",   "create", "isyieldable", "resume",
                                            "running", "status", "wrap",        "yield"};
constexpr const char* math_fields[] = {
    "abs",  "acos",   "asin",       "atan", "ceil",       "cos", "deg",        "exp",  "floor",
    "fmod", "huge",   "log",        "max",  "maxinteger", "min", "mininteger", "modf", "pi",
    "rad",  "random", "randomseed", "sin",  "sqrt",       "tan", "tointeger",  "type", "ult"};
// string.dump is removed: bytecode could escape the text-only `load`.
constexpr const char* string_fields[] = {"byte",    "char",  "find",   "format", "gmatch",   "gsub",
                                         "len",     "lower", "match",  "pack",   "packsize", "rep",
                                         "reverse", "sub",   "unpack", "upper"};
constexpr const char* table_fields[] = {"concat", "insert", "move",  "pack",
                                        "remove", "sort",   "unpack"};
constexpr const char* utf8_fields[] = {"char",  "charpattern", "codepoint",
                                       "codes", "len",         "offset"};

// No io, os, debug, package, dofile, loadfile, warn or arg.
constexpr sandbox_global globals[] = {
    {"_G", {}},
    {"_VERSION", {}},
    {"assert", {}},
    {"collectgarbage", {}},
    {"coroutine", coroutine_fields},
    {"error", {}},
    {"getmetatable", {}},
    {"ipairs", {}},
    {"load", {}},
    {"math", math_fields},
    {"next", {}},
    {"pairs", {}},
    {"pcall", {}},
    {"print", {}},
    {"rawequal", {}},
    {"rawget", {}},
    {"rawlen", {}},
    {"rawset", {}},
    {"require", {}},
    {"select", {}},
    {"setmetatable", {}},
    {"string", string_fields},
    {"table", table_fields},
    {"tonumber", {}},
    {"tostring", {}},
    {"type", {}},
    {"utf8", utf8_fields},
    {"xpcall", {}},
};

// Non-function fields that modules add in their `constants` callback, which
// the manifests do not describe. Keep in step with those callbacks
// (process's callback only sets the pid metatable and adds no field).
struct constant_doc {
  std::string_view module, name, type, doc;
};
constexpr constant_doc constants[] = {
    {"json", "null", "lightuserdata",
     "The value JSON null decodes to and encodes from (a light userdata)."},
};

// --- text helpers ------------------------------------------------------------

void line(std::string& out, std::initializer_list<std::string_view> parts) {
  for (std::string_view p : parts) out.append(p);
  out += '\n';
}

// One `---text` line per line of `text`.
void doc_lines(std::string& out, std::string_view text) {
  while (true) {
    auto nl = text.find('\n');
    line(out, {"---", text.substr(0, nl)});
    if (nl == std::string_view::npos) return;
    text.remove_prefix(nl + 1);
  }
}

bool is_keyword(std::string_view s) {
  static constexpr std::string_view words[] = {
      "and",      "break",  "do",   "else", "elseif", "end",  "false", "for",
      "function", "goto",   "if",   "in",   "local",  "nil",  "not",   "or",
      "repeat",   "return", "then", "true", "until",  "while"};
  return std::find(std::begin(words), std::end(words), s) != std::end(words);
}

bool is_identifier(std::string_view s) {
  auto alpha = [](char c) { return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); };
  auto alnum = [&](char c) { return alpha(c) || (c >= '0' && c <= '9'); };
  return !s.empty() && alpha(s[0]) && std::all_of(s.begin(), s.end(), alnum) && !is_keyword(s);
}

// A name usable as a Lua parameter: keywords get a trailing underscore.
std::string param_name(std::string_view name) {
  std::string out(name);
  if (name != "..." && !is_identifier(name)) out += '_';
  return out;
}

// `t.name` or `t["name"]` for a field of table `t`.
std::string field_of(std::string_view table, std::string_view name) {
  std::string out(table);
  if (is_identifier(name)) {
    out += '.';
    out.append(name);
  } else {
    out += "[\"";
    out.append(name);
    out += "\"]";
  }
  return out;
}

void render_function(std::string& out, std::string_view table, const runtime::function_type& f) {
  if (f.doc) doc_lines(out, f.doc);
  std::string args;
  for (const runtime::param_type& p : f.params) {
    std::string name = param_name(p.name);
    line(out, {"---@param ", name, " ", p.type});
    if (!args.empty()) args += ", ";
    args += name;
  }
  for (const runtime::param_type& r : f.returns) line(out, {"---@return ", r.type, " ", r.name});
  if (is_identifier(f.name)) {
    line(out, {"function ", field_of(table, f.name), "(", args, ") end"});
  } else {
    line(out, {field_of(table, f.name), " = function(", args, ") end"});
  }
  out += '\n';
}

// `s` as a JSON string, through the runtime codec; nullopt if `s` is not UTF-8.
std::optional<std::string> json_string(const std::string& s) {
  runtime::result<std::string> text = runtime::json_encode(runtime::value(s));
  if (!text) return std::nullopt;
  return std::move(*text);
}

// Writes `text` to `dir/name`; false after a message to `err`.
bool write_file(const fs::path& dir, const std::string& name, const std::string& text,
                std::ostream& err) {
  fs::path path = dir / name;
  errno = 0;
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (out) out << text;
  if (out) out.close();
  if (!out) {
    int code = errno;
    err << "luad types: cannot write " << path.string() << ": "
        << (code ? std::strerror(code) : "write failed") << '\n';
    return false;
  }
  return true;
}

}  // namespace

std::span<const sandbox_global> sandbox_globals() { return globals; }

std::string module_definitions(const runtime::module_def& def) {
  std::string name(def.name);
  std::string table = is_identifier(name) ? name : "M";
  std::string out;
  line(out, {"---@meta ", name});
  out += '\n';
  if (!def.description.empty()) {
    doc_lines(out, def.description);
    out += "---\n";  // a paragraph break in the hover text
  }
  line(out, {"---Module classes: ", runtime::class_names(def.classes), "."});
  line(out, {"---@class luad.", name});
  line(out, {"local ", table, " = {}"});
  out += '\n';
  for (const runtime::function_type& f : def.manifest) render_function(out, table, f);
  for (const runtime::function_type& f : def.script_manifest) render_function(out, table, f);
  for (const constant_doc& c : constants) {
    if (c.module != def.name) continue;
    doc_lines(out, c.doc);
    line(out, {"---@type ", c.type});
    line(out, {field_of(table, c.name), " = nil"});
    out += '\n';
  }
  line(out, {"return ", table});
  return out;
}

std::string shared_definitions() {
  std::string out = R"lua(---@meta _
-- Types shared by the luad modules, for the Lua language server. Generated by
-- `luad types` from the module manifests: regenerate rather than edit.

---What kind of failure a luad error reports (errors.new accepts only these).
---@alias luad.error_kind
)lua";
  for (int k = 0; k <= static_cast<int>(runtime::error_kind::runtime); ++k) {
    line(out, {"---| \"", runtime::kind_name(static_cast<runtime::error_kind>(k)), "\""});
  }
  out += R"lua(
---A structured error: the second result of a call that failed, or raised with
---error(err). tostring(err) is "kind: message".
---@class luad.error
---@field kind luad.error_kind
---@field message string
---@field retryable boolean true when trying again may succeed
---@field traceback string? where the process failed, for an error that ended one

---A process id (a light userdata): compares equal to itself, works as a table
---key, and tostring(pid) gives its text form "node.serial".
---@class luad.pid

---A pending timer from time.after, for time.cancel.
---@class luad.timer

---One child of a supervisor.
---@class luad.supervisor_child
---@field name string
---@field script string path relative to the calling script
---@field args any[]? the child's `...`
---@field restart ("permanent"|"transient"|"temporary")? default "permanent"

---What supervisor.start takes.
---@class luad.supervisor_spec
---@field strategy ("one_for_one"|"one_for_all")? default "one_for_one"
---@field intensity integer? restarts allowed within `period` (default 3)
---@field period number? seconds (default 5)
---@field backoff {initial: number?, max: number?}? restart delay in seconds, doubling
---@field children luad.supervisor_child[]?

---Returns the luad module `modname` (time, log, json, ...), or else the Lua file
---`modname` below the script root (`a.b` is a/b.lua or a/b/init.lua), loaded once
---per process. There is no `package` library.
---@param modname string
---@return any
function require(modname) end
)lua";
  return out;
}

std::string luarc_json(const std::string& library_dir) {
  std::string out = R"({
  "$schema": "https://raw.githubusercontent.com/LuaLS/vscode-lua/master/setting/schema.json",
  "runtime.version": "Lua 5.4",
  "runtime.builtin": {
    "debug": "disable",
    "io": "disable",
    "os": "disable",
    "package": "disable"
  },
  "workspace.library": [)";
  out += json_string(library_dir).value_or("");  // write_types refuses a path that is not UTF-8
  out += "]\n}\n";
  return out;
}

std::string luacheckrc() {
  std::string out =
      R"lua(-- luacheck config for luad scripts, generated by `luad types`: Lua 5.4 with
-- only the globals the luad sandbox provides (no io, os, debug, package,
-- dofile, loadfile, warn, arg or string.dump). Library tables are read-only.
--   luacheck --config luad-types/.luacheckrc script.lua
stds.luad = {
  globals = {
    _G = {other_fields = true},
    _ENV = {other_fields = true},  -- not a global but the chunk's upvalue; as in std lua54
  },
  read_globals = {
)lua";
  for (const sandbox_global& g : globals) {
    std::string_view name = g.name;
    if (name == "_G") continue;
    // _VERSION is a string: its methods come from the string library.
    std::span<const char* const> fields = name == "_VERSION" ? string_fields : g.fields;
    line(out, {"    ", name, fields.empty() ? " = {}," : " = {fields = {"});
    if (fields.empty()) continue;
    std::string row = "     ";
    for (const char* f : fields) {
      if (row.size() + std::strlen(f) > 90) {
        line(out, {row});
        row = "     ";
      }
      row.append(" ").append(f).append(" = {},");
    }
    line(out, {row});
    out += "    }},\n";
  }
  out += "  },\n}\nstd = \"luad\"\n";
  return out;
}

int write_types(const std::string& out_dir, std::ostream& err) {
  fs::path dir(out_dir.empty() ? "." : out_dir);
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec || !fs::is_directory(dir, ec)) {
    err << "luad types: cannot create directory " << dir.string() << ": "
        << (ec ? ec.message() : std::string("not a directory")) << '\n';
    return 1;
  }
  fs::path absolute = fs::absolute(dir, ec).lexically_normal();
  if (ec) absolute = dir;
  std::string library = absolute.string();
  if (library.size() > 1 && library.back() == '/') library.pop_back();
  if (!json_string(library)) {
    err << "luad types: " << library
        << ": .luarc.json can only name a folder whose path is UTF-8\n";
    return 1;
  }

  bool ok = write_file(dir, "luad.lua", shared_definitions(), err) &&
            write_file(dir, ".luarc.json", luarc_json(library), err) &&
            write_file(dir, ".luacheckrc", luacheckrc(), err);
  for (const runtime::module_def* def : modules::with_test()) {  // (test: for luad test's scripts)
    if (!ok) break;
    std::string file(def->name);
    file += ".lua";
    ok = write_file(dir, file, module_definitions(*def), err);
  }
  return ok ? 0 : 1;
}

}  // namespace luad::server
