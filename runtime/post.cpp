// Queuing a message within the receiver's mailbox limits (post.hpp).
#include "runtime/post.hpp"

#include <new>
#include <string>

#include "runtime/command.hpp"
#include "runtime/process.hpp"

namespace luad::runtime {

status post(process& to, pid from, std::string_view topic, std::string_view body) noexcept {
  try {
    // A durable run's messages go to its journal first (dispatcher/durable.cpp).
    if (const command_sink* own = to.own_sink())
      if (std::optional<outcome> taken = own->take_message(from, topic, body))
        return taken->err ? status(std::move(*taken->err)) : status(done{});
    const limits& lim = to.context().limits;
    runtime::mailbox& box = to.mailbox();
    if (box.full(lim.mailbox)) {
      return fail(error_kind::limit, "the mailbox of " + to.id().to_string() + " is full (" +
                                         std::to_string(lim.mailbox) + " messages)");
    }
    std::size_t bytes = message::footprint(topic.size(), body.size());
    if (!box.reserve(bytes, lim.mailbox_bytes)) {
      return fail(error_kind::limit,
                  "the mailbox of " + to.id().to_string() + " is full (" +
                      std::to_string(box.bytes()) + " of " + std::to_string(lim.mailbox_bytes) +
                      " bytes queued; this message needs " + std::to_string(bytes) + ")");
    }
    message* m = message::make(from, topic, body);
    if (!m) {
      box.unreserve(bytes);
      return fail(error_kind::limit, "out of memory for the message");
    }
    m->reserved = true;
    to.deliver(m);
    return done{};
  } catch (const std::bad_alloc&) {
    return fail(error_kind::limit, "out of memory");  // (fits without allocating)
  }
}

}  // namespace luad::runtime
