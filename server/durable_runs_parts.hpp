// What durable_runs.cpp and workflow_runs.cpp share (internal to durable_runs).
#pragma once

#include <functional>
#include <string>

#include "dispatcher/journal.hpp"
#include "runtime/code.hpp"
#include "runtime/result.hpp"
#include "runtime/value.hpp"

namespace luad::server::durable_runs_parts {

/// The wall clock in unix seconds.
double unix_now();
/// Waits for an asynchronous journal write (protocol calls, startup and the
/// io thread's rare writes only).
runtime::status written(const std::function<void(dispatcher::journal_backend::written_fn)>& write);
/// The schedule tick a stored spawn request names, or 0.
double tick_of(const dispatcher::run_record& rec);
/// A new run's record, state running; its spawn request is the caller's.
dispatcher::run_record fresh_record(const std::string& owner, const std::string& script,
                                    const runtime::chunk& code, const runtime::value::array& args);

}  // namespace luad::server::durable_runs_parts
