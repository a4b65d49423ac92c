// Command names, for stats, listings and error messages.
#include "runtime/command.hpp"

namespace luad::runtime {

std::string_view command_name(command_id id) {
  switch (id) {
    case command_id::clock_sleep: return "clock.sleep";
    case command_id::fetch_request: return "fetch.request";
    case command_id::store_op: return "storage.op";
    case command_id::workflow_value: return "workflow.value";
    case command_id::max_id: break;
  }
  return "unknown";
}

}  // namespace luad::runtime
