// The one explicit list of modules a process can `require`; the host passes it
// to the scheduler (runtime::scheduler_options::modules).
#include <array>
#include <vector>

#include "modules/modules.hpp"

namespace luad::modules {

std::span<const runtime::module_def* const> all() {
  static const std::array<const runtime::module_def*, 9> list = {
      &time_module,       &log_module,   &json_module, &errors_module,   &process_module,
      &supervisor_module, &store_module, &http_module, &workflow_module,
  };
  return list;
}

std::span<const runtime::module_def* const> with_test() {
  static const std::vector<const runtime::module_def*> list = [] {
    std::vector<const runtime::module_def*> l(all().begin(), all().end());
    l.push_back(&test_module);
    return l;
  }();
  return list;
}

}  // namespace luad::modules
