// The one explicit list of modules a process can `require`.
#include <array>

#include "modules/modules.hpp"

namespace luad::runtime {

std::span<const module_def* const> module_list() {
  static const std::array<const module_def*, 8> list = {
      &modules::time_module,   &modules::log_module,     &modules::json_module,
      &modules::errors_module, &modules::process_module, &modules::supervisor_module,
      &modules::store_module,  &modules::http_module,
  };
  return list;
}

}  // namespace luad::runtime
