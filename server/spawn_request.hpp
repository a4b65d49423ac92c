// What a spawn request asks for, beyond its code: the process's limits (the
// daemon's [limits] tightened by the request), its args, its owner and its
// profile's permissions and account. The `spawn` method reads a request with
// it, and a durable run rebuilds its spawn from the same stored request when
// it is resumed (server/durable_runs.hpp).
#pragma once

#include <boost/json.hpp>

#include "runtime/limits.hpp"
#include "runtime/result.hpp"
#include "server/access.hpp"
#include "server/config.hpp"
#include "server/engine.hpp"

namespace luad::server {

/// Fills `so`'s limits, args, owner, permissions and account from a spawn
/// request's `params` (`limits`, `args`, `profile`), for `who` connected as
/// `as` (the peer, or the uid of its `as_uid` with no group).
runtime::status spawn_options_from(const config& cfg, engine& eng,
                                   const boost::json::object& params, const actor& who, peer as,
                                   runtime::spawn_options& so);

/// What a config workflow's processes run under: its limits, permissions,
/// classes, owner ("workflow:NAME") and account, who may reach and control
/// it. The supervised workflow's child and a durable run of it share this.
runtime::process_context workflow_context(engine& eng, const workflow_config& w);

/// A durable run of config workflow `w`: its context, its args (strings) and
/// its script's folder as the root of its `require`s.
void workflow_spawn_options(engine& eng, const workflow_config& w, runtime::spawn_options& so);

}  // namespace luad::server
