// What durable.cpp and durable_inbox.cpp share (internal to the durable sink).
#pragma once

#include <string>
#include <string_view>

#include "runtime/command.hpp"
#include "runtime/value.hpp"

namespace luad::dispatcher::durable_parts {

/// The wall clock in unix seconds.
double unix_now();
/// `v` as JSON text ("null" when it has no JSON form): reports.
std::string text_of(const runtime::value& v);
/// Whether the map `args` has kind = `kind` (workflow.value commands).
bool has_kind(const runtime::value& args, std::string_view kind);
/// process.receive in a durable run: workflow.value {kind = "receive"}.
bool is_receive(const runtime::command& c);

}  // namespace luad::dispatcher::durable_parts
