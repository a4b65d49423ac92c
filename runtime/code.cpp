// Compiling scripts to dumped bytecode, once, in a per-thread compiler state.
#include "runtime/code.hpp"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "runtime/lua.hpp"

namespace luad::runtime {

namespace {

struct compiler_state {
  lua_State* L = luaL_newstate();
  ~compiler_state() {
    if (L) lua_close(L);
  }
};

int write_dump(lua_State*, const void* p, std::size_t sz, void* ud) {
  static_cast<std::string*>(ud)->append(static_cast<const char*>(p), sz);
  return 0;
}

chunk_ptr failed(std::string_view name, error_kind kind, std::string message) {
  auto c = std::make_shared<chunk>();
  c->name = std::string(name);
  c->compile_error = error{kind, std::move(message), false, {}};
  return c;
}

}  // namespace

chunk_ptr compile(std::string_view source, std::string_view name) {
  thread_local compiler_state compiler;
  lua_State* L = compiler.L;
  if (!L) return failed(name, error_kind::internal, "cannot create a compiler state");
  std::string chunkname = std::string("@").append(name);  // (GCC 12 -O3 warns on "@" + s)
  auto c = std::make_shared<chunk>();
  c->name = std::string(name);
  int status = luaL_loadbufferx(L, source.data(), source.size(), chunkname.c_str(), "t");
  if (status != LUA_OK) {
    std::string msg = lua_tostring(L, -1) ? lua_tostring(L, -1) : "cannot compile";
    lua_settop(L, 0);
    bool binary = msg.find("binary chunk") != std::string::npos;
    return failed(name, binary ? error_kind::invalid : error_kind::syntax, std::move(msg));
  }
  lua_dump(L, write_dump, &c->bytecode, 0);
  lua_settop(L, 0);
  return c;
}

chunk_ptr compile_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return failed(path, error_kind::not_found, "cannot open script '" + path + "'");
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return failed(path, error_kind::invalid, "cannot read script '" + path + "'");
  return compile(text.str(), path);
}

std::string code_cache::resolve(const std::string& base, const std::string& script) {
  std::string key = base;
  key += '\0';
  key += script;
  {
    std::lock_guard lock(mu_);
    auto it = resolved_.find(key);
    if (it != resolved_.end()) return it->second;
  }
  std::string path =
      std::filesystem::weakly_canonical(std::filesystem::path(base) / script).string();
  std::lock_guard lock(mu_);
  return resolved_.emplace(std::move(key), std::move(path)).first->second;
}

chunk_ptr code_cache::get(const std::string& path) {
  {
    std::lock_guard lock(mu_);
    auto it = chunks_.find(path);
    if (it != chunks_.end()) return it->second;
  }
  chunk_ptr c = compile_file(path);  // outside the lock: compiling takes a while
  if (c->compile_error && c->compile_error->kind == error_kind::not_found) return c;
  std::lock_guard lock(mu_);
  return chunks_.emplace(path, std::move(c)).first->second;
}

}  // namespace luad::runtime
