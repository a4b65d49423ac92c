// Compiled scripts: parse once per content, keep the dumped bytecode in a
// bounded cache shared by every process, and remember who required what.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "runtime/value.hpp"

struct lua_State;

namespace luad::runtime {

/// The default of source_limit(): a script or load() text of at most 1 MiB.
inline constexpr std::size_t default_source_limit = std::size_t{1} << 20;
/// The default of compile_deadline().
inline constexpr std::chrono::milliseconds default_compile_deadline{5000};
/// Bytes of source handed to the parser at a time by load_text.
inline constexpr std::size_t load_piece_bytes = 4096;

/// The largest source text compile() and the sandbox's load() accept, in
/// bytes (0: no bound). Process-wide; the daemon sets it from `[limits] source`.
/// Thread-safe.
void set_source_limit(std::size_t bytes);
std::size_t source_limit();
/// How long one compile() may parse before it fails with kind `limit`
/// ("compile took longer than N s"); 0 = no deadline. Thread-safe.
void set_compile_deadline(std::chrono::milliseconds d);
std::chrono::milliseconds compile_deadline();

/// The error of a source of `size` bytes over source_limit(): kind `limit`.
error source_too_large(std::size_t size);

/// lua_load of the text chunk `text` (mode "t"), fed to the parser
/// load_piece_bytes at a time, calling `poll(L, arg)` before each piece: it
/// may raise a Lua error, which the load then returns (so a compile can be
/// interrupted). Returns lua_load's status, the function or message on top.
int load_text(lua_State* L, const char* text, std::size_t len, const char* chunkname,
              void (*poll)(lua_State*, void*), void* arg);

/// Loads `bytecode` (a chunk's dump) as a function named `chunkname`, binary
/// chunks only. Returns lua_load's status, the function or message on top.
int load_bytecode(lua_State* L, const std::string& bytecode, const char* chunkname);

/// A compiled chunk, shared read-only by every process that runs it.
/// Either `bytecode` is set, or `compile_error` says why the source is bad.
struct chunk {
  std::string name;      ///< shown in errors and tracebacks, e.g. "hello.lua"
  std::string bytecode;  ///< lua_dump output, debug info kept for tracebacks
  std::optional<error> compile_error;
  /// Small-object bytes the last process running this chunk held when it
  /// first waited: the next ones size their first heap chunk to it, so a
  /// fresh process wastes no chunk tail (0 until one has waited).
  mutable std::atomic<std::uint32_t> start_bytes{0};
};
using chunk_ptr = std::shared_ptr<const chunk>;

/// Compiles Lua source text (binary chunks are refused). Thread-safe. The
/// result always exists; a syntax error is kept in `compile_error` so that the
/// process that runs it ends with a structured reason. A source over
/// source_limit() or a parse past compile_deadline() is a compile error of
/// kind `limit`. It may take that long: never call it on the daemon's io thread.
chunk_ptr compile(std::string_view source, std::string_view name);

/// A 64-bit hash of `text` (FNV-1a), the same in every run and build: how the
/// code cache tells changed files and durable runs name the code they ran.
std::uint64_t content_hash(std::string_view text);

/// Reads and compiles a file; a missing or unreadable file is a compile error
/// of kind `not_found` / `invalid`.
chunk_ptr compile_file(const std::string& path);

/// Code that a group of processes keeps running whatever the files say now:
/// chunks by canonical path. A process whose context holds a pin loads the
/// pinned chunk for every path the pin has (its script, the packages it
/// requires) and the current file for the rest. The daemon pins a workflow to
/// its previous code when new code fails at once (a rollback).
struct code_pin {
  std::unordered_map<std::string, chunk_ptr> chunks;
};

struct code_cache_options {
  /// Bound on the bytecode kept (least recently used goes first); 0 = keep
  /// nothing: every get() reads and compiles the file.
  std::size_t capacity_bytes = std::size_t{64} << 20;
  /// A cached path is stat()ed at most once per interval; 0 = on every get().
  std::chrono::milliseconds recheck{1000};
};

/// Counters since the cache was made; a consistent snapshot.
struct code_cache_stats {
  std::uint64_t hits = 0;            ///< get() served a cached chunk (no compile)
  std::uint64_t misses = 0;          ///< get() found no usable chunk
  std::uint64_t compiles = 0;        ///< sources compiled (successfully or not)
  std::uint64_t compile_errors = 0;  ///< compiles that failed (syntax, unreadable)
  std::uint64_t evictions = 0;       ///< entries dropped to stay under capacity_bytes
  std::size_t entries = 0;           ///< paths cached now
  std::size_t bytes = 0;             ///< bytecode bytes cached now
  std::size_t resolved = 0;          ///< script names remembered by resolve (bounded)
  std::size_t resolved_bytes = 0;    ///< their keys' and paths' bytes (bounded)
};

/// Compiled scripts and packages by path. A path is recompiled only when its
/// content changes: (mtime, size, inode) are checked at most once per
/// `recheck`, and a changed stamp with the same content hash reuses the chunk.
/// Chunks handed out stay valid after eviction or reload (shared ownership).
/// Thread-safe: every member may be called from any thread.
class code_cache {
 public:
  explicit code_cache(code_cache_options opts = {});

  /// Replaces the options; entries beyond the new capacity are evicted.
  void configure(code_cache_options opts);
  code_cache_options options() const;

  /// The chunk for the file at `path` (used as given: pass canonical paths).
  /// A missing file gives a chunk whose compile_error has kind `not_found`
  /// (not cached); a syntax error is cached like code, per content.
  chunk_ptr get(const std::string& path);
  /// The chunk cached for `path` if it was checked within `recheck` (no file
  /// access, no compile: what the io thread may call), else nullptr.
  chunk_ptr fresh(const std::string& path);
  /// `pin`'s chunk for `path` if it holds one (no file access), else get(path).
  chunk_ptr get(const std::string& path, const code_pin* pin);
  /// The chunk cached for `path` as it is, without looking at the file, or
  /// nullptr (what ran before a change, for a snapshot taken as files change).
  chunk_ptr cached(const std::string& path) const;
  /// `script` resolved against folder `base` and made canonical, remembered so
  /// that spawning the same script again costs no file-system calls. Throws
  /// std::filesystem::filesystem_error like weakly_canonical.
  std::string resolve(const std::string& base, const std::string& script);
  /// `script` resolved against the folder of the script file `file` (what a
  /// process spawns beside itself): the same as resolve(parent of file,
  /// script), remembered by `file`, so a spawn does not split a path.
  std::string resolve_from(const std::string& file, const std::string& script);
  /// How many resolved names are remembered at most, and their bytes (keys
  /// and paths): names come from scripts (a spawn of a missing "x" .. i is
  /// resolved before it fails, each up to PATH_MAX long), so past either the
  /// memory is dropped whole and refilled by what is used.
  static constexpr std::size_t resolved_capacity = 4096;
  static constexpr std::size_t resolved_capacity_bytes = std::size_t{1} << 20;

  /// The next get(path) re-stats and re-reads the file, recompiling only if
  /// the content changed (for a file watcher). Running processes keep theirs.
  void invalidate(const std::string& path);
  /// invalidate() for every path, and forgets resolve()'s answers (`reload`).
  void invalidate_all();

  code_cache_stats stats() const;
  /// Why the last compile of `path` failed; nullopt if it compiled (or never ran).
  std::optional<error> last_error(const std::string& path) const;
  /// Every path currently cached, sorted (what a file watcher should watch).
  std::vector<std::string> paths() const;

  /// Records that the chunk at `from` required the file package at `to`.
  void add_dependency(const std::string& from, const std::string& to);
  /// Every file `script_path` required, directly or transitively, sorted
  /// (without `script_path` itself). Edges are kept for the cache's life.
  std::vector<std::string> dependencies(const std::string& script_path) const;

 private:
  struct stamp {
    std::int64_t mtime_ns = 0;
    std::int64_t size = -1;
    std::uint64_t inode = 0;
    bool operator==(const stamp&) const = default;
  };
  struct entry {
    chunk_ptr code;
    stamp st;
    std::uint64_t hash = 0;
    std::chrono::steady_clock::time_point checked;
    bool stale = false;  // invalidated: re-read before use
    std::size_t bytes = 0;
    std::list<std::string>::iterator lru;
  };
  using clock = std::chrono::steady_clock;

  chunk_ptr fresh_hit(const std::string& path, clock::time_point now);
  chunk_ptr load(const std::string& path, clock::time_point now);
  chunk_ptr compile_counted(const std::string& path, std::string_view text);
  void store(const std::string& path, const chunk_ptr& code, stamp st, std::uint64_t hash,
             clock::time_point now);
  void evict_locked();
  std::optional<std::string> remembered(const std::string& key) const;
  std::string remember(std::string key, std::string path);

  mutable std::mutex mu_;
  code_cache_options opts_;
  std::unordered_map<std::string, entry> entries_;
  std::list<std::string> lru_;  // most recently used first
  std::size_t bytes_ = 0;
  code_cache_stats counts_;
  std::unordered_map<std::string, error> errors_;
  std::unordered_map<std::string, std::string> resolved_;
  std::size_t resolved_bytes_ = 0;  // of resolved_'s keys and paths
  std::unordered_map<std::string, std::set<std::string>> deps_;
};

/// True when `path` lies strictly below the folder `root` (both canonical and
/// absolute, as code_cache::resolve gives them): the one "is this script under
/// its root" check of spawn, require and the daemon.
bool path_inside(std::string_view root, std::string_view path);

}  // namespace luad::runtime
