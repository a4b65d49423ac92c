// Engine start-up and shut-down order.
#include "server/engine.hpp"

#include <stdexcept>
#include <string>

#include "runtime/module.hpp"
#include "runtime/yield.hpp"

namespace luad::server {

engine::engine(runtime::scheduler_options opts) {
  clock_.register_in(registry_);
  registry_.freeze();
  runtime::init_modules();
  for (const runtime::module_def* def : runtime::module_list()) {
    for (const runtime::yield_type* y : runtime::exports_of(*def).yields) {
      if (!registry_.has(y->command)) {
        throw std::logic_error("module " + std::string(def->name) + " yields " + y->name +
                               " but no dispatcher handles it");
      }
    }
  }
  clock_.start();
  scheduler_ = std::make_unique<runtime::scheduler>(opts, registry_);
  scheduler_->start();
}

engine::~engine() { stop(); }

void engine::stop() {
  if (scheduler_) scheduler_->stop();
  clock_.stop();
}

}  // namespace luad::server
