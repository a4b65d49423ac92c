// A real PostgreSQL 15 server for tests (issue 16's backend and cluster
// tests): a fresh cluster in a temporary folder (a copy of one initdb makes
// once per machine and user, in TMPDIR/luad-pg15-template-v1-UID), started with
// pg_ctl, listening only on a Unix socket in that folder, stopped and removed
// when the object goes. Run as root (as CI is), the server runs as the
// `postgres` user, which PostgreSQL requires.
#pragma once

#include <filesystem>
#include <string>

namespace luad::test {

class postgres_server {
 public:
  /// Copies the template cluster (making it first if need be) and starts it;
  /// throws std::runtime_error with initdb's, cp's or pg_ctl's output when either fails (or
  /// PostgreSQL 15 is not installed).
  postgres_server();
  ~postgres_server();
  postgres_server(const postgres_server&) = delete;
  postgres_server& operator=(const postgres_server&) = delete;

  /// A libpq connection string for the `postgres` database as the superuser.
  std::string conninfo() const;
  /// Creates a fresh, empty database and returns its connection string: one
  /// server can then serve several tests without one seeing another's rows.
  std::string new_database();
  /// Stops the server (fast shutdown) and starts it again on the same data:
  /// what a test of reconnection needs.
  void restart();
  /// Stops it now, without a checkpoint (as a crash would).
  void stop_immediately();
  void start();

  /// Runs `sql` on `conninfo` through a connection of its own, as an
  /// outsider would; returns the first column of the first row ("" when
  /// there is none). Throws std::runtime_error with the server's message
  /// when the statement fails.
  static std::string scalar(const std::string& conninfo, const std::string& sql);

 private:
  std::filesystem::path dir_;  // holds data/, the log and the socket
  bool running_ = false;
  int databases_ = 0;
  std::string run_as_owner(const std::string& command) const;  // output; throws on failure
};

}  // namespace luad::test
