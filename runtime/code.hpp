// Compiled scripts: parse once, keep the dumped bytecode, load it per process.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "runtime/value.hpp"

namespace luad::runtime {

/// A compiled main chunk, shared read-only by every process that runs it.
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
/// process that runs it ends with a structured reason.
chunk_ptr compile(std::string_view source, std::string_view name);

/// Reads and compiles a file; a missing or unreadable file is a compile error
/// of kind `not_found` / `invalid`.
chunk_ptr compile_file(const std::string& path);

/// Compiled scripts by path, compiled on first use and kept for the life of
/// the cache (hot reload comes later). Thread-safe.
class code_cache {
 public:
  chunk_ptr get(const std::string& path);
  /// `script` resolved against folder `base` and made canonical, remembered so
  /// that spawning the same script again costs no file-system calls. Throws
  /// std::filesystem::filesystem_error like weakly_canonical.
  std::string resolve(const std::string& base, const std::string& script);

 private:
  std::mutex mu_;
  std::unordered_map<std::string, chunk_ptr> chunks_;
  std::unordered_map<std::string, std::string> resolved_;
};

}  // namespace luad::runtime
