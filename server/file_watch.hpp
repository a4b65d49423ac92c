// The file watcher behind hot code reloading (only the daemon uses it): reports
// changed files under directory trees, through inotify on an Asio io_context,
// or by polling mtimes.
#pragma once

#include <boost/asio/io_context.hpp>

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace luad::server {

struct file_watch_options {
  /// After the first change, how long to gather more before reporting. A burst
  /// is reported when it has been quiet this long, or at most 10× this after
  /// its first change, so a long burst still yields a few callbacks.
  std::chrono::milliseconds coalesce{50};
  /// Period of the mtime-polling fallback.
  std::chrono::milliseconds poll_interval{500};
  /// Poll from the start (tests, file systems without inotify).
  bool force_polling = false;
  /// Most inotify watches (one per directory) to take from the per-user pool,
  /// which other programs share; beyond it, fall back to polling. 0: no cap.
  std::size_t max_watches = 0;
};

/// Watches directory trees and reports changed files on `io`'s thread.
/// Not thread-safe: call watch(), stop() and the destructor on io's thread, or
/// while io is not running. polling() may be called from any thread.
class file_watcher {
 public:
  /// Receives a sorted, de-duplicated list of absolute paths that were created,
  /// modified, deleted, renamed to or from, or replaced by a directory. A
  /// directory that appears is reported with everything in it; one that goes
  /// may be reported by its own path only, which covers what was in it.
  /// `everything` is true when changes were lost (inotify queue overflow):
  /// treat every file as changed. The callback may call stop() or destroy the
  /// watcher; an exception it throws leaves io.run().
  using callback = std::function<void(std::vector<std::string> paths, bool everything)>;

  /// Falls back to polling (logged once) if inotify cannot be set up.
  file_watcher(boost::asio::io_context& io, callback on_change, file_watch_options opts = {});
  /// Calls stop(): no callback runs after it returns. Destroy before `io`.
  ~file_watcher();
  file_watcher(const file_watcher&) = delete;
  file_watcher& operator=(const file_watcher&) = delete;

  /// Watches the tree at `dir` (absolute or relative to the working directory),
  /// recursively; subdirectories are watched as they appear. Changes before
  /// this call are not reported. Throws std::runtime_error naming `dir` if it
  /// is not a readable directory. Does nothing after stop().
  void watch(const std::string& dir);
  /// True when running the mtime-polling fallback (thread-safe).
  bool polling() const;
  /// Stops watching and drops pending changes and the callback. Idempotent.
  void stop();

 private:
  struct state;
  std::shared_ptr<state> state_;  // shared with pending handlers
};

}  // namespace luad::server
