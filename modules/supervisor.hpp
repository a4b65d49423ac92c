// Supervisors: a process that starts children and restarts them by policy
// (modules/supervisor.lua), startable from Lua (`supervisor.start`) and C++.
#pragma once

#include <string>

#include "runtime/scheduler.hpp"

namespace luad::modules {

/// Starts a supervisor process with `spec` (the table documented in
/// modules/supervisor.lua; child scripts relative to `base`, which must lie
/// inside `root`). `parent`, if set, is linked: the supervisor ends with it.
/// `ctx`, if given, is what the supervisor and its children run under
/// (limits, permissions, module classes); its script root is set to `root`.
/// Returns the supervisor's pid, or why it did not start.
runtime::result<runtime::pid> start_supervisor(runtime::scheduler& s, const runtime::value& spec,
                                               const std::string& base, const std::string& root,
                                               runtime::pid parent = {},
                                               const runtime::process_context* ctx = nullptr);

}  // namespace luad::modules
