// File packages: `require(name)` of a Lua file below the process's script root,
// loaded once per process from the scheduler's shared bytecode cache.
//
// DESIGN. The C++ half (find) checks the name, searches the root, resolves
// symlinks, takes the chunk from the code cache and records the dependency
// edge; it calls nothing in Lua. Its result is pushed under lua_pcall
// (push_protected), so no C++ object is alive when Lua raises. The Lua half
// keeps a per-process list of the packages being loaded in the registry, to
// name a require cycle, then runs the chunk with lua_callk: a yield in the
// package's top level (time.sleep, receive) suspends the process and
// require_done finishes the require on resume. Each entry of the list is held
// in a to-be-closed slot of require's frame, so a failed load leaves no stale
// "loading" mark behind wherever its error is caught.
#include "runtime/package.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <initializer_list>

#include "runtime/code.hpp"
#include "runtime/lua_value.hpp"
#include "runtime/process.hpp"
#include "runtime/result.hpp"
#include "runtime/scheduler.hpp"

namespace luad::runtime {

namespace {

const char* const k_loading = "luad.loading";
const char* const k_mark_meta = "luad.loading.mark";

enum class found_kind : std::uint8_t { package, failure, denied };

// What the C++ half was asked and what it found.
struct lookup {
  std::string name;
  std::string requirer;  // path of the package being loaded; empty: the main script
  const char* available = "";
  found_kind what = found_kind::failure;
  std::string path;  // canonical, when found
  chunk_ptr code;
  std::string message;  // failure: why
  error denied;         // denied: the structured error to raise
};

// Joins parts (instead of "literal" + std::string, which GCC 12 misreports).
std::string cat(std::initializer_list<std::string_view> parts) {
  std::string out;
  for (std::string_view part : parts) out.append(part);
  return out;
}

enum class file_state : std::uint8_t { missing, regular, directory, other, failed };

file_state state_of(const struct stat& sb) {
  if (S_ISREG(sb.st_mode)) return file_state::regular;
  return S_ISDIR(sb.st_mode) ? file_state::directory : file_state::other;
}

// Where `path` leads once symlinks are resolved (into `real`).
file_state locate_linked(const std::string& path, std::string& real, int& err) {
  char buf[PATH_MAX];
  struct stat sb {};
  if (!::realpath(path.c_str(), buf) || ::stat(buf, &sb) != 0) {
    err = errno;
    return err == ENOENT || err == ENOTDIR ? file_state::missing : file_state::failed;
  }
  real = buf;
  return state_of(sb);
}

// What `rel` (slash-separated, below the canonical `root`) is, and its real
// path in `real`. Each component is lstat()ed: with no symlink on the way the
// path is already canonical; a symlink sends the whole path through realpath.
file_state locate(const std::string& root, const std::string& rel, std::string& real, int& err) {
  real = root;
  struct stat sb {};
  for (std::size_t at = 0;;) {
    std::size_t slash = rel.find('/', at);
    if (real.empty() || real.back() != '/') real += '/';
    real.append(rel, at, slash == std::string::npos ? std::string::npos : slash - at);
    if (::lstat(real.c_str(), &sb) != 0) {
      err = errno;
      return err == ENOENT || err == ENOTDIR ? file_state::missing : file_state::failed;
    }
    if (S_ISLNK(sb.st_mode)) return locate_linked(cat({root, "/", rel}), real, err);
    if (slash == std::string::npos) return state_of(sb);
    if (!S_ISDIR(sb.st_mode)) return file_state::missing;
    at = slash + 1;
  }
}

// Checks one candidate, `rel` below `root`; true when the search is over
// (found or failed), false to go on (with the place added to `tried`).
bool try_candidate(process& p, const std::string& root, const std::string& rel, lookup& r,
                   std::string& tried) {
  std::string file = cat({root, root == "/" ? "" : "/", rel});
  std::string real;
  int err = 0;
  file_state state = locate(root, rel, real, err);
  if (state == file_state::missing) {
    tried += cat({"; no file '", file, "'"});
    return false;
  }
  if (state == file_state::failed) {
    r.message = cat({"module '", r.name, "': cannot read '", file, "': ", std::strerror(err)});
    return true;
  }
  if (!path_inside(root, real)) {
    r.what = found_kind::denied;
    r.denied = error{error_kind::permission_denied,
                     cat({"require '", r.name, "': '", file, "' resolves to '", real,
                          "', outside the script root '", root, "'"}),
                     false,
                     {}};
    return true;
  }
  if (state != file_state::regular) {
    r.message =
        cat({"module '", r.name, "': '", file, "' is ",
             state == file_state::directory ? "a directory, not a file" : "not a regular file"});
    return true;
  }
  code_cache& cache = p.owner().code();
  chunk_ptr code = cache.get(real, p.context().pinned_code.get());
  if (code->compile_error && code->compile_error->kind == error_kind::not_found) {
    tried += cat({"; no file '", file, "'"});  // deleted since the lstat
    return false;
  }
  if (code->compile_error) {
    r.message = cat({"error loading module '", r.name, "': ", code->compile_error->message});
    return true;
  }
  r.what = found_kind::package;
  r.path = std::move(real);
  r.code = std::move(code);
  cache.add_dependency(r.requirer.empty() ? p.script_name() : r.requirer, r.path);
  return true;
}

void find(process& p, lookup& r) {
  std::string problem = package_name_problem(r.name);
  if (!problem.empty()) {
    r.what = found_kind::denied;
    r.denied =
        error{error_kind::permission_denied, cat({"require '", r.name, "': ", problem}), false, {}};
    return;
  }
  std::string tried = cat({"module '", r.name, "' not found: no luad module '", r.name,
                           "' (available: ", r.available, ")"});
  const std::string& ctx_root = p.context().script_root;
  if (ctx_root.empty()) {
    r.message = tried.append(
        "; no file searched: file packages need a script root, and this process has none "
        "(inline source)");
    return;
  }
  std::string root = p.owner().code().resolve(ctx_root, ".");
  std::string rel = r.name;
  std::replace(rel.begin(), rel.end(), '.', '/');
  if (try_candidate(p, root, cat({rel, ".lua"}), r, tried)) return;
  if (try_candidate(p, root, cat({rel, "/init.lua"}), r, tried)) return;
  r.message = std::move(tried);
}

// Runs under lua_pcall: pushes true, the package's function and its path, or
// false and the error to raise.
int push_found(lua_State* L, const lookup& r) {
  if (r.what == found_kind::package) {
    lua_pushboolean(L, 1);
    if (load_bytecode(L, r.code->bytecode, r.path.c_str()) != LUA_OK) return lua_error(L);
    lua_pushlstring(L, r.path.data(), r.path.size());
    return 3;
  }
  lua_pushboolean(L, 0);
  if (r.what == found_kind::denied) {
    push_error(L, r.denied);
  } else {
    lua_pushlstring(L, r.message.data(), r.message.size());
  }
  return 2;
}

// The C++ half, kept apart so that its objects are gone before Lua raises.
// Returns what push_found pushed (3 or 2) or -1 with an error on top; fails
// when C++ failed (out of memory, a filesystem error while resolving).
result<int> find_protected(lua_State* L, std::string_view name, std::string_view requirer,
                           const char* available) noexcept {
  try {
    lookup r;
    r.name.assign(name);
    r.requirer.assign(requirer);
    r.available = available;
    find(*process::of(L), r);
    return push_protected<lookup, push_found>(L, r);
  } catch (const std::bad_alloc&) {
    return fail(error_kind::internal, "out of memory");  // (fits without allocating)
  } catch (const std::exception& e) {                    // filesystem_error from resolve
    return fail(error_kind::internal, e.what());
  }
}

int push_reason(lua_State* L, const error& e) {
  lua_pushlstring(L, e.message.data(), e.message.size());
  return 1;
}

// --- the loading list ---------------------------------------------------------
// A mark {name, path, thread} per package being loaded, in the registry list
// k_loading: marks in load order in the array part, name -> mark in the hash.
// The mark sits in a to-be-closed slot of require's frame, so it is removed
// when require returns or an error unwinds through it into a pcall. A mark
// whose thread died of an error (a coroutine resumed by coroutine.resume keeps
// its stack, so nothing was closed) is stale and swept on the next require.

// Pushes the list, made on first use; returns its index.
int push_loading(lua_State* L) {
  if (lua_getfield(L, LUA_REGISTRYINDEX, k_loading) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, k_loading);
  }
  return lua_gettop(L);
}

// Removes entry `at` of the list at `list` (and its name, if it maps to it).
// Allocates nothing, so it cannot raise.
void remove_at(lua_State* L, int list, lua_Integer at) {
  auto n = static_cast<lua_Integer>(lua_rawlen(L, list));
  lua_rawgeti(L, list, at);  // the mark
  lua_rawgeti(L, -1, 1);     // its name
  lua_pushvalue(L, -1);
  if (lua_rawget(L, list) != LUA_TNIL && lua_rawequal(L, -1, -3)) {
    lua_pop(L, 1);
    lua_pushnil(L);
    lua_rawset(L, list);
  } else {
    lua_pop(L, 2);
  }
  lua_pop(L, 1);
  for (lua_Integer i = at; i < n; ++i) {
    lua_rawgeti(L, list, i + 1);
    lua_rawseti(L, list, i);
  }
  lua_pushnil(L);
  lua_rawseti(L, list, n);
}

// __close of a mark: takes it off the list, however require ended.
int mark_close(lua_State* L) {
  if (lua_getfield(L, LUA_REGISTRYINDEX, k_loading) != LUA_TTABLE) return 0;
  int list = lua_gettop(L);
  for (auto i = static_cast<lua_Integer>(lua_rawlen(L, list)); i > 0; --i) {
    lua_rawgeti(L, list, i);
    bool same = lua_rawequal(L, -1, 1);
    lua_pop(L, 1);
    if (same) {
      remove_at(L, list, i);
      break;
    }
  }
  return 0;
}

// Drops marks whose coroutine died of an error while loading.
void sweep_stale(lua_State* L, int list) {
  for (auto i = static_cast<lua_Integer>(lua_rawlen(L, list)); i > 0; --i) {
    lua_rawgeti(L, list, i);
    lua_rawgeti(L, -1, 3);
    lua_State* owner = lua_tothread(L, -1);
    int status = owner ? lua_status(owner) : LUA_ERRRUN;
    lua_pop(L, 2);
    if (status != LUA_OK && status != LUA_YIELD) remove_at(L, list, i);
  }
}

// Raises "require cycle: a -> b -> a" if the name at 1 is being loaded.
void check_cycle(lua_State* L, int list) {
  sweep_stale(L, list);
  lua_pushvalue(L, 1);
  if (lua_rawget(L, list) == LUA_TNIL) {
    lua_pop(L, 1);
    return;
  }
  lua_pop(L, 1);
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  luaL_addstring(&b, "require cycle: ");
  auto n = static_cast<lua_Integer>(lua_rawlen(L, list));
  bool in_cycle = false;
  for (lua_Integer i = 1; i <= n; ++i) {
    lua_rawgeti(L, list, i);
    lua_rawgeti(L, -1, 1);
    lua_remove(L, -2);
    in_cycle = in_cycle || lua_rawequal(L, -1, 1);
    if (!in_cycle) {
      lua_pop(L, 1);
      continue;
    }
    luaL_addvalue(&b);
    luaL_addstring(&b, " -> ");
  }
  lua_pushvalue(L, 1);
  luaL_addvalue(&b);
  luaL_pushresult(&b);
  luaL_where(L, 1);
  lua_insert(L, -2);
  lua_concat(L, 2);
  lua_error(L);
}

// Pushes the path of the newest package this thread is loading, or nil.
void push_requirer(lua_State* L, int list) {
  lua_pushthread(L);
  for (auto i = static_cast<lua_Integer>(lua_rawlen(L, list)); i > 0; --i) {
    lua_rawgeti(L, list, i);
    lua_rawgeti(L, -1, 3);
    bool mine = lua_rawequal(L, -1, -3);
    lua_pop(L, 1);
    if (mine) {
      lua_rawgeti(L, -1, 2);
      lua_replace(L, -3);
      lua_pop(L, 1);
      return;
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  lua_pushnil(L);
}

// Pushes a new mark {name at 1, path at `path`, this thread}.
void push_mark(lua_State* L, int path) {
  lua_createtable(L, 3, 0);
  lua_pushvalue(L, 1);
  lua_rawseti(L, -2, 1);
  lua_pushvalue(L, path);
  lua_rawseti(L, -2, 2);
  lua_pushthread(L);
  lua_rawseti(L, -2, 3);
  if (luaL_newmetatable(L, k_mark_meta)) {
    lua_pushcfunction(L, mark_close);
    lua_setfield(L, -2, "__close");
  }
  lua_setmetatable(L, -2);
}

// Puts the mark at `mark` on the list.
void add_mark(lua_State* L, int mark) {
  int list = push_loading(L);
  lua_pushvalue(L, mark);
  lua_rawseti(L, list, static_cast<lua_Integer>(lua_rawlen(L, list)) + 1);
  lua_pushvalue(L, 1);
  lua_pushvalue(L, mark);
  lua_rawset(L, list);
  lua_pop(L, 1);
}

// After the package's chunk returned (also on resume after a yield in it).
// Stack: [1] name, [2] loaded, [3] mark (to be closed), [4] path, [5] result.
int require_done(lua_State* L, int, lua_KContext) {
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    lua_pushboolean(L, 1);
  }
  lua_pushvalue(L, 1);
  lua_pushvalue(L, -2);
  lua_rawset(L, 2);
  return 1;  // returning closes the mark
}

}  // namespace

std::string package_name_problem(std::string_view name) {
  if (name.empty()) return "a package name cannot be empty";
  if (name.find_first_of(std::string_view("/\\\0", 3)) != std::string_view::npos) {
    return "package names are dotted paths below the script root ('a.b' is a/b.lua), without "
           "'/', '\\' or NUL";
  }
  if (name.front() == '.' || name.back() == '.' || name.find("..") != std::string_view::npos) {
    return "package names have no empty parts ('..', or a leading or trailing '.')";
  }
  return {};
}

int require_package(lua_State* L, const char* available) {
  lua_settop(L, 2);
  int list = push_loading(L);  // [3]
  check_cycle(L, list);
  push_requirer(L, list);  // [4] the path of the package this thread loads, or nil
  std::size_t requirer_len = 0;
  const char* requirer = lua_type(L, 4) == LUA_TSTRING ? lua_tolstring(L, 4, &requirer_len) : "";
  std::size_t len = 0;
  const char* name = lua_tolstring(L, 1, &len);
  int got = 0;
  bool internal = false;
  {
    result<int> r = find_protected(L, std::string_view(name, len),
                                   std::string_view(requirer, requirer_len), available);
    if (r) {
      got = *r;
    } else {  // the reason goes onto the Lua stack; raise once `r` is gone
      internal = true;
      got = push_protected<error, push_reason>(L, r.error());
    }
  }
  if (got < 0) return lua_error(L);
  if (internal) return luaL_error(L, "require '%s': %s", name, lua_tostring(L, -1));
  if (!lua_toboolean(L, 5)) {  // [5] false, [6] the error
    if (lua_type(L, 6) == LUA_TSTRING) {
      luaL_where(L, 1);
      lua_insert(L, -2);
      lua_concat(L, 2);
    }
    return lua_error(L);
  }
  // [5] true, [6] function, [7] path  ->  [3] mark, [4] path, [5] function
  push_mark(L, 7);
  lua_replace(L, 3);
  lua_replace(L, 4);
  lua_replace(L, 5);
  lua_toclose(L, 3);
  add_mark(L, 3);
  lua_pushvalue(L, 1);  // the package's `...`: its name and path, as Lua's require passes
  lua_pushvalue(L, 4);
  // Not a pcall: an error keeps the package's frames for the traceback, and
  // the mark is closed wherever it is caught.
  lua_callk(L, 2, 1, 0, require_done);
  return require_done(L, LUA_OK, 0);
}

}  // namespace luad::runtime
