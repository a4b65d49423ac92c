// Test helpers shared by every test: a shared in-process engine, one-call
// script runs, eventually(), has() and a self-removing temporary folder.
#pragma once

#include <chrono>
#include <filesystem>
#include <future>
#include <string>
#include <string_view>
#include <thread>

#include "runtime/code.hpp"
#include "runtime/limits.hpp"
#include "server/engine.hpp"

namespace luad::test {

/// Stress sizes are divided by this under ThreadSanitizer, whose shadow memory
/// and slow atomics make 100k-process tests take minutes and gigabytes.
#if defined(__SANITIZE_THREAD__)
inline constexpr int sanitizer_scale = 10;
inline constexpr bool tsan_build = true;
#else
inline constexpr int sanitizer_scale = 1;
inline constexpr bool tsan_build = false;
#endif
/// Under either sanitizer (ASan runs in a Debug build at -O1): wall-clock budgets of
/// busy tests need room, e.g. 10,000 faked requests take ~50 ms in Release
/// and ~1.9 s under ASan.
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
inline constexpr bool sanitizer_build = true;
#else
inline constexpr bool sanitizer_build = false;
#endif

/// One engine (clock + scheduler, two workers) shared by the tests of this binary.
server::engine& shared_engine();

/// Spawns `source` on `eng` (the shared engine by default) and waits for its exit.
/// Fails the current test if it takes longer than `timeout`.
runtime::exit_info run_lua(std::string_view source, runtime::spawn_options opts = {},
                           server::engine* eng = nullptr,
                           std::chrono::seconds timeout = std::chrono::seconds(60));

/// Runs the script at `relative` (to the source tree, which is the tests'
/// working directory) and waits for its exit.
runtime::exit_info run_file(const std::string& relative);

/// Waits for the exit behind `fut` (from spawn_lua or any on_exit promise) and
/// returns it; fails the current test if it takes longer than `timeout`.
runtime::exit_info wait_exit(std::future<runtime::exit_info>& fut,
                             std::chrono::seconds timeout = std::chrono::seconds(60));

/// A process's exit as a pending future, for tests that run several at once.
/// When `id` is given, it receives the new process's pid.
std::future<runtime::exit_info> spawn_lua(server::engine& eng, std::string_view source,
                                          runtime::spawn_options opts = {},
                                          runtime::pid* id = nullptr);

/// Polls `pred` every millisecond until it holds (true) or `limit` passes (false).
template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds limit = std::chrono::seconds(10)) {
  auto end = std::chrono::steady_clock::now() + limit;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

/// True when `text` contains `part`.
inline bool has(std::string_view text, std::string_view part) {
  return text.find(part) != std::string_view::npos;
}

/// The bytes of the file at `p`, or "" when it cannot be read.
std::string slurp(const std::filesystem::path& p);

/// A fresh, empty folder under the system's temp folder, named after `tag`,
/// the test process and a counter (so tests never share one); removed with
/// everything in it when the object goes. path() is canonical (no symlinks),
/// as the paths in luad's own messages are.
class temp_dir {
 public:
  explicit temp_dir(std::string_view tag = "luad");
  ~temp_dir();
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  /// path() / relative.
  std::filesystem::path operator/(const std::filesystem::path& relative) const {
    return path_ / relative;
  }
  /// Writes `text` to path() / relative (creating folders); returns the path.
  std::filesystem::path write(const std::filesystem::path& relative, std::string_view text) const;
  /// Like write, then moves the file's modification time `later` past what it
  /// was before (or now, for a new file), so that a change shows even where
  /// timestamps are coarse.
  std::filesystem::path write(const std::filesystem::path& relative, std::string_view text,
                              std::chrono::seconds later) const;

 private:
  std::filesystem::path path_;
};

}  // namespace luad::test
