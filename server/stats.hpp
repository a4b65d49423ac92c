// The `stats` method's document (proto/PROTOCOL.md): processes, mailboxes,
// scheduler, timers, fetch, store, memory, code, workflows and connections,
// read on the io thread. It is also what the metrics expose (metrics.hpp).
#pragma once

#include <boost/json.hpp>

#include <chrono>
#include <cstddef>

#include "server/engine.hpp"

namespace luad::server {

/// What the daemon adds to the engine's own counters.
struct daemon_counters {
  std::chrono::steady_clock::time_point started_at;
  boost::json::object code;  ///< code_reload::counters()
  std::size_t connections = 0;
  boost::json::object workflow_restarts;  ///< workflows::restarts()
  boost::json::object cluster;            ///< cluster_member::counters(); {} outside a cluster
};

/// The stats document of `eng` and the daemon's counters.
boost::json::object stats_document(engine& eng, daemon_counters counters);

}  // namespace luad::server
