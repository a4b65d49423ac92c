// What the daemon tests of durable runs share (daemon_durable_test.cpp,
// daemon_workflow_durable_test.cpp, daemon_durable_children_test.cpp): reading
// replies, writing scripts, listing runs and running one script to its end.
#pragma once

#include <boost/json.hpp>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <string>
#include <string_view>

#include "tests/hostile/daemon_process.hpp"
#include "tests/modules/store_backends.hpp"
#include "tests/server/daemon_support.hpp"

namespace luad::test::durable {

/// The [storage] section of SQLite in the daemon's folder.
inline const std::string k_sqlite_storage = "[storage]\ndata_dir = \"data\"\n";

/// Calls `body` with a [storage] section for each backend and its database
/// ("" for SQLite): SQLite in the daemon's folder, then a fresh database of
/// the tests' PostgreSQL server.
inline void for_each_storage(
    const std::function<void(const std::string& storage, const std::string& db)>& body) {
  {
    std::string backend = "sqlite";
    CAPTURE(backend);
    body(k_sqlite_storage, "");
  }
  {
    std::string backend = "postgres";
    CAPTURE(backend);
    std::string db = luad::test::shared_postgres().new_database();
    body("[storage]\nbackend = \"postgres\"\nurl = \"" + db + "\"\n", db);
  }
}

/// Where a daemon test's durable runs are: on PostgreSQL `db` (its luad_runs
/// rows), or in SQLite when `db` is "" (no rows to count there, as the file
/// may be open); for the tests that run on both, proof that the daemon used
/// the backend its config named.
inline std::string runs_in_postgres(const std::string& db) {
  if (db.empty()) return "";
  return luad::test::postgres_server::scalar(db, "SELECT count(*) FROM luad_runs");
}

/// A daemon's config: socket, data and script folders in its own folder, two
/// workers, `storage` (SQLite by default), a default profile with
/// `permissions` (TOML array items), then `more` (more sections).
inline std::string daemon_config(const std::string& permissions, const std::string& more = "",
                                 const std::string& storage = k_sqlite_storage) {
  return "[server]\nsocket = \"luad.sock\"\ngrace_period = 0.5\nworkers = 2\n" + storage +
         "[scripts]\nroots = [\"scripts\"]\nwatch = false\n"
         "[[profile]]\nname = \"default\"\npermissions = [" +
         permissions + "]\n" + more;
}

/// The reply's result, or null (the error is reported by the caller's CHECK).
inline boost::json::value result_of(const boost::json::value& reply) {
  if (!reply.is_object()) return nullptr;
  const boost::json::value* r = reply.as_object().if_contains("result");
  return r ? *r : boost::json::value(nullptr);
}

// One `text` for every daemon test: files that use both namespaces (or meet
// in one unity unit) then see a single function.
using luad_test::text;

/// The first column of the first row of `q` on database `db`.
inline std::string sql(const std::string& db, const std::string& q) {
  return postgres_server::scalar(db, q);
}

inline void write_file(const std::filesystem::path& path, const std::string& body) {
  std::filesystem::create_directories(path.parent_path());
  std::ofstream(path) << body;
}

/// The daemon's durable runs, by id.
inline std::map<std::string, boost::json::object> runs_of(luad_hostile::daemon_process& d) {
  luad_hostile::line_client c(d.socket());
  std::map<std::string, boost::json::object> out;
  boost::json::value r = result_of(c.call("runs"));
  if (!r.is_array()) return out;
  for (const auto& v : r.as_array()) out[std::string(v.at("run").as_string())] = v.as_object();
  return out;
}

/// True when the daemon has `n` runs, all in `state`.
inline bool all_in_state(luad_hostile::daemon_process& d, std::size_t n, std::string_view state) {
  auto runs = runs_of(d);
  if (runs.size() != n) return false;
  for (const auto& [id, r] : runs)
    if (r.at("state").as_string() != state) return false;
  return true;
}

/// Runs `source` to its end (not durable) and returns its first result.
inline boost::json::value run_once(luad_hostile::daemon_process& d, const std::string& source) {
  using namespace std::chrono_literals;
  luad_hostile::line_client c(d.socket());
  boost::json::value exit = result_of(c.call("spawn", {{"source", source}, {"wait", true}}, 10s));
  if (!exit.is_object() || !exit.as_object().contains("results")) return exit;
  const auto& results = exit.at("results").as_array();
  return results.empty() ? boost::json::value(nullptr) : results[0];
}

}  // namespace luad::test::durable
