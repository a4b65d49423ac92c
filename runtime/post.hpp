// Queuing a message for a process within the receiver's mailbox limits: the
// one place that charges a sent message's bytes (process.send, the protocol's
// send) before the copy is made.
#pragma once

#include <string_view>

#include "runtime/pid.hpp"
#include "runtime/result.hpp"

namespace luad::runtime {

class process;

/// Copies `topic` and `body` into a message from `from` and delivers it to
/// `to`, unless `to`'s mailbox holds `limits.mailbox` messages or the message
/// would take its queued bytes past `limits.mailbox_bytes`: then kind `limit`
/// and nothing is copied. The bytes stay charged to `to` until it takes the
/// message. Any thread; never throws.
status post(process& to, pid from, std::string_view topic, std::string_view body) noexcept;

}  // namespace luad::runtime
