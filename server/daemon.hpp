// The daemon (`luad serve`): the engine from a config file, plus a Unix socket
// speaking newline-delimited JSON-RPC 2.0 (proto/PROTOCOL.md). One Asio thread
// owns the socket and every connection; process exits arrive from workers and
// are posted to it. Peers are checked with SO_PEERCRED before anything is read.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "server/config.hpp"

namespace luad::server {

/// The release, as `luad --version` and the protocol's `version` report it.
inline constexpr const char* luad_version = "0.1.0";

class daemon {
 public:
  explicit daemon(config cfg);
  ~daemon();
  daemon(const daemon&) = delete;
  daemon& operator=(const daemon&) = delete;

  /// Opens storage, starts the engine and listens on the socket (and the
  /// metrics address, if configured). Throws std::runtime_error with a clear
  /// message (another daemon on the socket, a socket that cannot be created,
  /// a metrics address that cannot be bound, a database that cannot be used).
  void start();
  /// Serves until SIGTERM/SIGINT or a `shutdown` request, then stops: no new
  /// connections, CANCEL to every process, up to the grace period, kill the
  /// rest, close the store. Returns the exit code (0).
  int run();
  /// Asks run() to stop (any thread).
  void request_stop();
  /// The port the metrics listener serves on (0: none). After start().
  std::uint16_t metrics_port() const;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

/// `luad serve --config FILE`: loads the config, sets up logging (the
/// config's level unless `log_level` is given, and its format) and runs the
/// daemon. Returns the process exit code (2 for a bad config, 1 when it cannot
/// start).
int serve(const std::string& config_path, const std::string& log_level = {});

}  // namespace luad::server
