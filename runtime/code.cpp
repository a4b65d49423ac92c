// Compiling scripts to dumped bytecode in a per-thread compiler state, and the
// bounded, content-checked cache of compiled files every spawn and require uses.
#include "runtime/code.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <sstream>

#include "runtime/bytecode_check.hpp"
#include "runtime/lua.hpp"
#include "runtime/script_path.hpp"

namespace luad::runtime {

namespace {

std::atomic<std::size_t> g_source_limit{default_source_limit};
std::atomic<std::int64_t> g_deadline_ms{default_compile_deadline.count()};

struct piece_reader {
  const char* text;
  std::size_t left;
  void (*poll)(lua_State*, void*);
  void* arg;
};

const char* read_piece(lua_State* L, void* ud, std::size_t* size) {
  auto* r = static_cast<piece_reader*>(ud);
  if (r->left == 0) {
    *size = 0;
    return nullptr;
  }
  if (r->poll) r->poll(L, r->arg);  // may raise: lua_load returns the error
  const char* at = r->text;
  *size = std::min(r->left, load_piece_bytes);
  r->text += *size;
  r->left -= *size;
  return at;
}

struct deadline {
  std::chrono::steady_clock::time_point end;
  std::int64_t ms;
  bool passed = false;
};

void check_deadline(lua_State* L, void* arg) {
  auto* d = static_cast<deadline*>(arg);
  if (std::chrono::steady_clock::now() < d->end) return;
  d->passed = true;
  lua_pushfstring(L, "compile took longer than %f s", static_cast<lua_Number>(d->ms) / 1000.0);
  lua_error(L);
}

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

// Joins parts (instead of "literal" + std::string, which GCC 12 misreports).
std::string cat(std::initializer_list<std::string_view> parts) {
  std::string out;
  for (std::string_view part : parts) out.append(part);
  return out;
}

// Reads the whole file at `path` into `text`; on failure returns the error chunk.
chunk_ptr read_text(const std::string& path, std::string& text) {
  errno = 0;
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    int err = errno;
    if (err == 0 || err == ENOENT || err == ENOTDIR)
      return failed(path, error_kind::not_found, cat({"cannot open script '", path, "'"}));
    return failed(path, error_kind::invalid,
                  cat({"cannot open script '", path, "': ", std::strerror(err)}));
  }
  std::ostringstream out;
  out << in.rdbuf();
  if (in.bad()) return failed(path, error_kind::invalid, cat({"cannot read script '", path, "'"}));
  text = std::move(out).str();
  return nullptr;
}

}  // namespace

// FNV-1a, 64 bits: stable across runs, fast enough next to a compile.
std::uint64_t content_hash(std::string_view text) {
  std::uint64_t h = 14695981039346656037ull;
  for (unsigned char ch : text) {
    h ^= ch;
    h *= 1099511628211ull;
  }
  return h;
}

void set_source_limit(std::size_t bytes) { g_source_limit.store(bytes); }
std::size_t source_limit() { return g_source_limit.load(std::memory_order_relaxed); }
void set_compile_deadline(std::chrono::milliseconds d) { g_deadline_ms.store(d.count()); }
std::chrono::milliseconds compile_deadline() {
  return std::chrono::milliseconds(g_deadline_ms.load(std::memory_order_relaxed));
}

error source_too_large(std::size_t size) {
  return {error_kind::limit,
          cat({"source is ", std::to_string(size), " bytes, more than the limit of ",
               std::to_string(source_limit()), " ([limits] source)"}),
          false,
          {}};
}

namespace {

struct bytecode_reader {
  const std::string* text;
  bool done;
};

const char* read_bytecode(lua_State*, void* ud, std::size_t* size) {
  auto* r = static_cast<bytecode_reader*>(ud);
  if (r->done) return nullptr;
  r->done = true;
  *size = r->text->size();
  return r->text->data();
}

}  // namespace

int load_bytecode(lua_State* L, const std::string& bytecode, const char* chunkname) {
  bytecode_reader reader{&bytecode, false};
  return lua_load(L, read_bytecode, &reader, chunkname, "b");
}

int load_text(lua_State* L, const char* text, std::size_t len, const char* chunkname,
              void (*poll)(lua_State*, void*), void* arg) {
  piece_reader r{text, len, poll, arg};
  return lua_load(L, read_piece, &r, chunkname, "t");
}

chunk_ptr compile(std::string_view source, std::string_view name) {
  thread_local compiler_state compiler;
  lua_State* L = compiler.L;
  if (!L) return failed(name, error_kind::internal, "cannot create a compiler state");
  if (std::size_t limit = source_limit(); limit && source.size() > limit) {
    error e = source_too_large(source.size());
    return failed(name, e.kind, std::move(e.message));
  }
  std::string chunkname = std::string("@").append(name);  // (GCC 12 -O3 warns on "@" + s)
  auto c = std::make_shared<chunk>();
  c->name = std::string(name);
  deadline d{std::chrono::steady_clock::now() + compile_deadline(), compile_deadline().count()};
  int status = load_text(L, source.data(), source.size(), chunkname.c_str(),
                         d.ms > 0 ? check_deadline : nullptr, &d);
  if (status != LUA_OK) {
    std::string msg = lua_tostring(L, -1) ? lua_tostring(L, -1) : "cannot compile";
    lua_settop(L, 0);
    bool binary = msg.find("binary chunk") != std::string::npos;
    error_kind kind = d.passed ? error_kind::limit
                      : binary ? error_kind::invalid
                               : error_kind::syntax;
    return failed(name, kind, std::move(msg));
  }
  lua_dump(L, write_dump, &c->bytecode, 0);
  lua_settop(L, 0);
  if (const char* why = check_read_chains(c->bytecode.data(), c->bytecode.size()))
    return failed(name, error_kind::invalid, why);  // (Lua 5.4.4 bug: see bytecode_check.hpp)
  return c;
}

chunk_ptr compile_file(const std::string& path) {
  std::string text;
  if (chunk_ptr bad = read_text(path, text)) return bad;
  return compile(text, path);
}

code_cache::code_cache(code_cache_options opts) : opts_(opts) {}

void code_cache::configure(code_cache_options opts) {
  std::lock_guard lock(mu_);
  opts_ = opts;
  evict_locked();
}

code_cache_options code_cache::options() const {
  std::lock_guard lock(mu_);
  return opts_;
}

std::string code_cache::resolve(const std::string& base, const std::string& script) {
  std::string key = base;
  key += '\0';
  key += script;
  if (std::optional<std::string> known = remembered(key)) return std::move(*known);
  return remember(std::move(key), weakly_canonical(base, script));
}

std::string code_cache::resolve_from(const std::string& file, const std::string& script) {
  std::string key = file;
  key += '\1';  // never equal to resolve's keys, which hold a '\0' (C-string names hold none)
  key += script;
  if (std::optional<std::string> known = remembered(key)) return std::move(*known);
  std::string_view folder = file;
  std::size_t slash = folder.rfind('/');
  folder = slash == std::string_view::npos ? "" : folder.substr(0, slash == 0 ? 1 : slash);
  return remember(std::move(key), weakly_canonical(folder, script));
}

std::optional<std::string> code_cache::remembered(const std::string& key) const {
  std::lock_guard lock(mu_);
  if (auto it = resolved_.find(key); it != resolved_.end()) return it->second;
  return std::nullopt;
}

std::string code_cache::remember(std::string key, std::string path) {
  std::lock_guard lock(mu_);
  if (resolved_.size() >= resolved_capacity || resolved_bytes_ >= resolved_capacity_bytes) {
    resolved_.clear();
    resolved_bytes_ = 0;
  }
  auto [it, added] = resolved_.emplace(std::move(key), std::move(path));
  if (added) resolved_bytes_ += it->first.size() + it->second.size();
  return it->second;
}

chunk_ptr code_cache::get(const std::string& path) {
  clock::time_point now = clock::now();
  if (chunk_ptr c = fresh_hit(path, now)) return c;
  return load(path, now);
}

chunk_ptr code_cache::fresh(const std::string& path) { return fresh_hit(path, clock::now()); }

chunk_ptr code_cache::get(const std::string& path, const code_pin* pin) {
  if (pin) {
    if (auto it = pin->chunks.find(path); it != pin->chunks.end()) return it->second;
  }
  return get(path);
}

chunk_ptr code_cache::cached(const std::string& path) const {
  std::lock_guard lock(mu_);
  auto it = entries_.find(path);
  return it == entries_.end() ? nullptr : it->second.code;
}

// The cached chunk if it was checked less than `recheck` ago; counts the hit.
chunk_ptr code_cache::fresh_hit(const std::string& path, clock::time_point now) {
  std::lock_guard lock(mu_);
  auto it = entries_.find(path);
  if (it == entries_.end() || it->second.stale || opts_.recheck.count() <= 0 ||
      now - it->second.checked >= opts_.recheck) {
    return nullptr;
  }
  ++counts_.hits;
  lru_.splice(lru_.begin(), lru_, it->second.lru);
  return it->second.code;
}

// Stats the file; reuses the entry if the stamp or, failing that, the content
// hash still matches; compiles otherwise. File I/O and compiling run unlocked.
chunk_ptr code_cache::load(const std::string& path, clock::time_point now) {
  struct stat sb {};
  if (::stat(path.c_str(), &sb) != 0) {
    int err = errno;
    std::lock_guard lock(mu_);
    ++counts_.misses;
    if (auto it = entries_.find(path); it != entries_.end()) {  // deleted: forget it
      bytes_ -= it->second.bytes;
      lru_.erase(it->second.lru);
      entries_.erase(it);
    }
    if (err == ENOENT || err == ENOTDIR)
      return failed(path, error_kind::not_found, cat({"cannot open script '", path, "'"}));
    return failed(path, error_kind::invalid,
                  cat({"cannot open script '", path, "': ", std::strerror(err)}));
  }
  if (!S_ISREG(sb.st_mode)) {
    std::lock_guard lock(mu_);
    ++counts_.misses;
    return failed(path, error_kind::invalid, cat({"script '", path, "' is not a regular file"}));
  }
  if (std::size_t limit = source_limit();
      limit && static_cast<std::uint64_t>(sb.st_size) > limit) {  // not even read
    std::lock_guard lock(mu_);
    ++counts_.misses;
    error e = source_too_large(static_cast<std::size_t>(sb.st_size));
    return failed(path, e.kind, cat({"script '", path, "': ", e.message}));
  }
  stamp st{static_cast<std::int64_t>(sb.st_mtim.tv_sec) * 1'000'000'000 + sb.st_mtim.tv_nsec,
           static_cast<std::int64_t>(sb.st_size), static_cast<std::uint64_t>(sb.st_ino)};
  bool caching = false;
  {
    std::lock_guard lock(mu_);
    caching = opts_.capacity_bytes > 0;
    auto it = entries_.find(path);
    if (it != entries_.end() && !it->second.stale && it->second.st == st) {
      it->second.checked = now;
      ++counts_.hits;
      lru_.splice(lru_.begin(), lru_, it->second.lru);
      return it->second.code;
    }
  }
  std::string text;
  if (chunk_ptr bad = read_text(path, text)) {
    std::lock_guard lock(mu_);
    ++counts_.misses;
    return bad;
  }
  std::uint64_t hash = content_hash(text);
  if (caching) {
    std::lock_guard lock(mu_);
    auto it = entries_.find(path);
    if (it != entries_.end() && it->second.hash == hash) {  // touched, not changed
      entry& e = it->second;
      e.st = st;
      e.checked = now;
      e.stale = false;
      ++counts_.hits;
      lru_.splice(lru_.begin(), lru_, e.lru);
      return e.code;
    }
  }
  chunk_ptr c = compile_counted(path, text);
  if (caching) store(path, c, st, hash, now);
  return c;
}

chunk_ptr code_cache::compile_counted(const std::string& path, std::string_view text) {
  chunk_ptr c = compile(text, path);
  std::lock_guard lock(mu_);
  ++counts_.misses;
  ++counts_.compiles;
  if (c->compile_error) {
    ++counts_.compile_errors;
    errors_.insert_or_assign(path, *c->compile_error);
  } else {
    errors_.erase(path);
  }
  return c;
}

void code_cache::store(const std::string& path, const chunk_ptr& code, stamp st, std::uint64_t hash,
                       clock::time_point now) {
  std::size_t size = code->bytecode.size() + path.size();
  if (code->compile_error) size += code->compile_error->message.size();
  std::lock_guard lock(mu_);
  auto [it, fresh] = entries_.try_emplace(path);
  entry& e = it->second;
  if (fresh) {
    lru_.push_front(path);
    e.lru = lru_.begin();
  } else {
    bytes_ -= e.bytes;
    lru_.splice(lru_.begin(), lru_, e.lru);
  }
  e.code = code;
  e.st = st;
  e.hash = hash;
  e.checked = now;
  e.stale = false;
  e.bytes = size;
  bytes_ += size;
  evict_locked();
}

void code_cache::evict_locked() {
  while (!lru_.empty() && (bytes_ > opts_.capacity_bytes || opts_.capacity_bytes == 0)) {
    auto it = entries_.find(lru_.back());
    bytes_ -= it->second.bytes;
    entries_.erase(it);
    lru_.pop_back();
    ++counts_.evictions;
  }
}

void code_cache::invalidate(const std::string& path) {
  std::lock_guard lock(mu_);
  if (auto it = entries_.find(path); it != entries_.end()) it->second.stale = true;
}

void code_cache::invalidate_all() {
  std::lock_guard lock(mu_);
  for (auto& [path, e] : entries_) e.stale = true;
  resolved_.clear();
  resolved_bytes_ = 0;
}

code_cache_stats code_cache::stats() const {
  std::lock_guard lock(mu_);
  code_cache_stats s = counts_;
  s.entries = entries_.size();
  s.bytes = bytes_;
  s.resolved = resolved_.size();
  s.resolved_bytes = resolved_bytes_;
  return s;
}

std::optional<error> code_cache::last_error(const std::string& path) const {
  std::lock_guard lock(mu_);
  auto it = errors_.find(path);
  if (it == errors_.end()) return std::nullopt;
  return it->second;
}

std::vector<std::string> code_cache::paths() const {
  std::vector<std::string> out;
  {
    std::lock_guard lock(mu_);
    out.reserve(entries_.size());
    for (const auto& [path, e] : entries_) out.push_back(path);
  }
  std::sort(out.begin(), out.end());
  return out;
}

void code_cache::add_dependency(const std::string& from, const std::string& to) {
  if (from == to) return;
  std::lock_guard lock(mu_);
  deps_[from].insert(to);
}

std::vector<std::string> code_cache::dependencies(const std::string& script_path) const {
  std::set<std::string> seen;
  std::lock_guard lock(mu_);
  std::vector<const std::string*> todo{&script_path};
  while (!todo.empty()) {
    const std::string* at = todo.back();
    todo.pop_back();
    auto it = deps_.find(*at);
    if (it == deps_.end()) continue;
    for (const std::string& next : it->second) {
      if (next != script_path && seen.insert(next).second) todo.push_back(&next);
    }
  }
  return {seen.begin(), seen.end()};
}

bool path_inside(std::string_view root, std::string_view path) {
  if (root.empty() || path.empty()) return false;
  if (root == "/") return path.size() > 1 && path.front() == '/';
  if (root.back() == '/') root.remove_suffix(1);
  return path.size() > root.size() + 1 && path.substr(0, root.size()) == root &&
         path[root.size()] == '/';
}

}  // namespace luad::runtime
