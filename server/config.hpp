// The daemon's configuration: a TOML file (configs/luad.toml documents every
// key) read into plain structs. Reading is strict: an unknown key, a wrong type
// or a bad value is an error naming the file, the line and the key, so a typo
// never silently falls back to a default. `luad check FILE` runs just this.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "runtime/limits.hpp"
#include "runtime/module.hpp"

namespace luad::server {

/// A config that cannot be used; what() is "FILE:LINE:COLUMN: KEY: why".
class config_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct server_config {
  std::string socket = "/run/luad/luad.sock";
  std::uint32_t socket_mode = 0660;       ///< file mode of the socket
  std::vector<std::uint32_t> allow_uids;  ///< peers allowed besides the daemon's own uid
  std::vector<std::uint32_t> allow_gids;
  unsigned workers = 0;             ///< 0 = one per core
  std::string log_level = "info";   ///< debug | info | warn | error
  std::string log_format = "text";  ///< text | json
  double grace_period = 10;         ///< seconds between CANCEL and kill at shutdown

  bool operator==(const server_config&) const = default;
};

struct storage_config {
  std::string data_dir = "data";  ///< relative paths are relative to the config file

  bool operator==(const storage_config&) const = default;
};

struct limits_config {
  runtime::limits process;  ///< defaults for every process
  std::size_t max_processes = 2'000'000;
  std::size_t max_connections = 1024;
  std::size_t max_request_bytes = std::size_t{16} << 20;
};

/// Compiled code: the bytecode cache and hot reload.
struct scripts_config {
  bool watch = true;  ///< follow changes under the roots and workflow folders (inotify)
  std::size_t cache_bytes = std::size_t{64} << 20;  ///< bytecode kept (LRU); 0 = none

  bool operator==(const scripts_config&) const = default;
};

/// A named permission set that clients may ask for when they submit.
struct profile_config {
  std::string name;
  runtime::permission_list permissions;
  std::vector<std::uint32_t> uids;  ///< who may use it (empty: everybody allowed in)
  std::vector<std::uint32_t> gids;
};

/// A long-lived process the daemon runs under its supervisor.
struct workflow_config {
  std::string name;
  std::string script;                 ///< resolved against the config file's folder
  std::vector<std::string> args;      ///< passed to the script as strings
  std::string start = "boot";         ///< boot | manual
  std::string restart = "permanent";  ///< permanent | transient | temporary
  /// none | restart: on a change to its script or a file it required, restart
  /// it on the new code (after CANCEL), if the new code compiles.
  std::string reload = "none";
  /// After a reload restart, seconds the new code is on trial: if one of its
  /// processes fails within them, the workflow goes back to its previous
  /// code. 0: never roll back.
  double reload_trial = 5;
  double backoff_initial = 0.1;  ///< seconds before the first restart
  double backoff_max = 30;       ///< cap of the exponential backoff
  int intensity = 5;             ///< restarts allowed within `period`...
  double period = 60;            ///< ...seconds, then the supervisor gives up
  runtime::permission_list permissions;
  runtime::limits limits;  ///< the [limits] defaults, overridden per workflow
  runtime::class_set classes = runtime::all_classes;

  bool operator==(const workflow_config&) const = default;
};

struct config {
  std::string path;  ///< the file it came from
  server_config server;
  storage_config storage;
  limits_config limits;
  std::vector<std::string> script_roots;  ///< absolute; empty = the config's folder
  scripts_config scripts;
  std::vector<profile_config> profiles;
  std::vector<workflow_config> workflows;
};

/// Reads and checks `path`. Throws config_error.
config load_config(const std::string& path);
/// The same from text (`path` is only used in messages and to resolve paths).
config parse_config(std::string_view text, const std::string& path);

}  // namespace luad::server
