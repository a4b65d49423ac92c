// The daemon's configuration: a TOML file (configs/luad.toml documents every
// key) read into plain structs. Reading is strict: an unknown key, a wrong type
// or a bad value is an error naming the file, the line and the key, so a typo
// never silently falls back to a default. `luad check FILE` runs just this.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "dispatcher/postgres_store.hpp"
#include "runtime/limits.hpp"
#include "runtime/module.hpp"
#include "runtime/owners.hpp"

namespace luad::server {

/// A config value in seconds (a double, as TOML gives it) as a steady-clock
/// duration.
inline std::chrono::steady_clock::duration config_seconds(double s) {
  return std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      std::chrono::duration<double>(s));
}

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
  /// Seconds a turn may run before the watchdog preempts it (runtime/watchdog.hpp).
  double time_slice = 0.002;

  bool operator==(const server_config&) const = default;
};

struct storage_config {
  /// "sqlite": the store and the journal in a file under `data_dir`, this
  /// daemon's alone. "postgres": on the PostgreSQL server at `url`, which
  /// several daemons may share (docs/cluster.md).
  std::string backend = "sqlite";
  std::string data_dir = "data";  ///< relative paths are relative to the config file
  /// backend = "postgres": a postgresql:// URL or a libpq connection string,
  /// without a password (refused: the config is not a place for secrets).
  std::string url;
  /// Where the password comes from: the environment variable named, or the
  /// file's first line (relative to the config file); neither = libpq's own
  /// ways (PGPASSWORD, ~/.pgpass, peer or trust authentication).
  std::string password_env, password_file;
  std::size_t pool_size = 4;      ///< connections per daemon: one writes, the rest read
  double statement_timeout = 10;  ///< seconds a statement may run on the server
  /// Whether there is a database for the store and durable runs.
  bool has_database() const { return backend == "postgres" || !data_dir.empty(); }
  /// Bytes (keys + values) a store namespace may hold unless a profile or
  /// workflow naming it sets `store_bytes`; a write past it fails with `limit`.
  std::size_t namespace_bytes = std::size_t{64} << 20;
  /// Namespaces given their own quota by a profile's or workflow's
  /// `store_bytes` (through its store:NAME permissions): name → bytes.
  std::map<std::string, std::size_t> namespace_quotas;

  bool operator==(const storage_config&) const = default;
};

struct limits_config {
  runtime::limits process;  ///< defaults for every process
  std::size_t max_processes = 2'000'000;
  std::size_t max_connections = 1024;
  std::size_t max_request_bytes = std::size_t{16} << 20;
  /// Exits of submitted processes the daemon remembers (for `wait`), by
  /// count and by estimated bytes; 0 = no bound.
  std::size_t remembered_exits = 10000;
  std::size_t remembered_exit_bytes = std::size_t{64} << 20;
  /// Log lines kept for `subscribe --backlog`, by count and bytes; 0 = no bound.
  std::size_t log_backlog = 10000;
  std::size_t log_backlog_bytes = std::size_t{16} << 20;
  /// Longest Lua source compiled: a submission, a script file, a load() text
  /// (runtime::set_source_limit); 0 = no bound.
  std::size_t source_bytes = std::size_t{1} << 20;
  /// Steps one string.find/match/gmatch/gsub call may take beyond 16 per
  /// subject byte before it raises a `limit` error (runtime::set_pattern_budget).
  std::size_t pattern_steps = 20'000'000;
  /// Steps one durable run's journal may hold (as Temporal bounds a
  /// history): past it, each command the run asks fails with `limit`, so a
  /// run that loops forever cannot fill the disk. 0 = no bound.
  std::size_t journal_steps = 100'000;
  /// Connections one peer uid may hold at once; 0 = a quarter of
  /// max_connections, at least 4. See connection_share().
  std::size_t connections_per_uid = 0;
  /// Seconds a connection with no request in flight, no subscription and no
  /// partial line may stay silent before the daemon closes it.
  double idle_timeout = 300;
  /// Seconds a request line has, from its first byte, to end with '\n'
  /// (a slowloris client is cut off after this).
  double request_timeout = 30;
};

/// The connections one uid may hold: connections_per_uid, or its default.
std::size_t connection_share(const limits_config& l);
/// Slots kept for root and the daemon's own uid: other peers together may
/// hold at most max_connections minus this (1/16 of it, at least 1).
std::size_t operator_reserve(const limits_config& l);

/// Compiled code: the bytecode cache and hot reload.
struct scripts_config {
  bool watch = true;  ///< follow changes under the roots and workflow folders (inotify)
  std::size_t cache_bytes = std::size_t{64} << 20;  ///< bytecode kept (LRU); 0 = none

  bool operator==(const scripts_config&) const = default;
};

/// The Prometheus endpoint (server/metrics_listener.hpp); off unless
/// `listen` is set.
struct metrics_config {
  /// "HOST:PORT" serving GET /metrics, HOST an IP address ("127.0.0.1:9464",
  /// "[::1]:9464"); port 0 picks a free one (logged). Empty: no listener.
  std::string listen;
  std::string address;     ///< the IP address of `listen`, without brackets
  std::uint16_t port = 0;  ///< its port

  bool operator==(const metrics_config&) const = default;
};

/// Daemons sharing one PostgreSQL database ([storage] backend = "postgres";
/// docs/cluster.md).
struct cluster_config {
  /// This daemon's node id, 1..65535: unique among the daemons on the
  /// database (checked at start), and the node part of its pids.
  std::uint32_t node = 1;
  /// Seconds a node's claim on its runs lasts without renewal (renewed every
  /// third of it): after a crash, its runs move to other nodes this long
  /// after its last renewal.
  double lease = 10;
  /// Durable runs this node holds at most; past it, new durable runs are
  /// queued for any node, and it claims none. 0 = no bound.
  std::size_t max_runs = 0;
  /// Messages sent from other nodes that may wait in the database for one
  /// durable run (its inbox full, or its node not yet there to move them);
  /// past it, a send from another node fails with `limit`.
  std::size_t max_mail = 10000;

  bool operator==(const cluster_config&) const = default;
};

/// Splits "HOST:PORT" (HOST an IPv4 address or a bracketed IPv6 one) into
/// `address` and `port`; false with `why` on anything else.
bool parse_listen(const std::string& text, std::string& address, std::uint16_t& port,
                  std::string& why);

/// A named permission set that clients may ask for when they submit.
struct profile_config {
  std::string name;
  runtime::permission_list permissions;
  std::vector<std::uint32_t> uids;  ///< who may use it (empty: everybody allowed in)
  std::vector<std::uint32_t> gids;
  /// What one owner (a peer's uid) may hold at once through this profile
  /// ([profile.quotas]; 0 = unlimited). A peer without a configured profile
  /// gets these defaults too.
  runtime::owner_quotas quotas = default_quotas();

  static runtime::owner_quotas default_quotas() { return {1000, 0, 10000}; }
  /// Quota of the store namespaces its store:NAME permissions name (0: the
  /// [storage] namespace_bytes default).
  std::size_t store_bytes = 0;
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
  /// Other owners ("uid:N", "workflow:NAME", "*" = all) that may send to the
  /// names its processes register (`reachable = true` means ["*"]).
  std::vector<std::string> reachable;
  /// Other owners that may kill, cancel, link to, monitor and inspect its
  /// processes (scripts and socket peers alike).
  std::vector<std::string> controllers;
  runtime::limits limits;  ///< the [limits] defaults, overridden per workflow
  runtime::class_set classes = runtime::all_classes;
  /// Quota of the store namespaces its permissions name (0: the default).
  std::size_t store_bytes = 0;
  /// Its runs are durable: journaled, and resumed after a restart of the
  /// daemon (docs/workflows.md). True whenever `schedule` is set.
  bool durable = false;
  /// A cron expression in UTC (server/schedule.hpp) at whose ticks the
  /// workflow runs; empty: none. Checked when the config is read.
  std::string schedule;
  /// one | all | none: which ticks missed while the daemon was down run when
  /// it is back (schedule::ticks_missed). Only given with a schedule.
  std::string catchup = "one";

  bool operator==(const workflow_config&) const = default;
};

struct config {
  std::string path;  ///< the file it came from
  server_config server;
  storage_config storage;
  limits_config limits;
  std::vector<std::string> script_roots;  ///< absolute; empty = the config's folder
  scripts_config scripts;
  metrics_config metrics;
  cluster_config cluster;
  std::vector<profile_config> profiles;
  std::vector<workflow_config> workflows;
};

/// Parses "64MiB", "512k", "1GB", "1048576" into bytes; false on bad text
/// (or a number past 2^64).
bool parse_size(const std::string& text, std::size_t& out);

/// Reads and checks `path`. Throws config_error.
config load_config(const std::string& path);

/// What the PostgreSQL backend needs from [storage] (backend = "postgres"),
/// the password read now from password_env or password_file. Throws
/// std::runtime_error naming the key when the variable is unset or the file
/// cannot be read.
dispatcher::postgres_options postgres_options_of(const storage_config& c);
/// The same from text (`path` is only used in messages and to resolve paths).
config parse_config(std::string_view text, const std::string& path);

}  // namespace luad::server
