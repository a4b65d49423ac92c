// The JSON-RPC methods as data: a table of {name, handler, flags}, one short
// function per method (proto/PROTOCOL.md is their reference). A handler
// returns its result or an expected failure (runtime::result); one whose
// answer waits (an exit, a workflow stop) returns `c.later()` and answers
// through connection::finish_deferred. io thread only.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/json.hpp>

#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string_view>

#include "proto/json_rpc.hpp"
#include "runtime/result.hpp"
#include "server/config.hpp"
#include "server/engine.hpp"

namespace luad::server {

class cluster_member;

class connection;
class events;
class workflows;
class code_reload;
class compile_pool;
class durable_runs;

/// What the methods work on: the daemon's parts (owned by daemon::impl).
struct services {
  config& cfg;
  engine& eng;
  events& ev;
  workflows& wf;
  code_reload& code;
  std::function<boost::json::object()> stats;
  std::function<void()> shutdown;  ///< begins the daemon's stop (posted)
  /// Where spawn compiles and reads scripts (server/compile_pool.hpp); the
  /// daemon sets it.
  compile_pool* compiler = nullptr;
  /// Durable runs (server/durable_runs.hpp); null without a data directory.
  durable_runs* runs = nullptr;
  /// This daemon as a node of a cluster (server/cluster.hpp); null unless
  /// the store is on PostgreSQL.
  cluster_member* cluster = nullptr;
};

/// A handler's answer: the `result`, or an expected failure (its error_kind
/// gives the code: invalid -32602, not_found -32004, permission_denied -32001,
/// others -32000).
using outcome = runtime::result<boost::json::value>;

/// One request being handled.
struct call {
  services& s;
  connection& from;
  const boost::json::object& params;
  const boost::json::value& id;
  bool deferred = false;

  /// What a handler returns when it answers later (with answer_later()).
  boost::json::value later() {
    deferred = true;
    return nullptr;
  }
  /// Answers this call later, from the io thread (a no-op once the
  /// connection is gone).
  std::function<void(const outcome&)> answer_later() const;
};

/// What a method is, beyond its handler.
enum method_flags : unsigned {
  reads = 0,           ///< looks only
  changes = 1u << 0,   ///< changes processes, workflows or the config
  may_wait = 1u << 1,  ///< may answer later (c.later())
};

struct method {
  std::string_view name;
  outcome (*handler)(call&);
  unsigned flags;
};

/// Every method, in PROTOCOL.md's order.
std::span<const method> method_table();

/// Runs `req` for `from`: the reply to send now, or nullopt when the method
/// answers later (through from.finish_deferred).
std::optional<boost::json::object> dispatch(services& s, connection& from,
                                            const proto::request& req);

}  // namespace luad::server
