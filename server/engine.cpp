// Engine start-up and shut-down order.
#include "server/engine.hpp"

#include <malloc.h>

#include <mutex>
#include <stdexcept>
#include <string>

#include "dispatcher/postgres_store.hpp"
#include "dispatcher/sqlite_store.hpp"
#include "modules/modules.hpp"
#include "runtime/module.hpp"
#include "runtime/yield.hpp"

namespace luad::server {

namespace {

// Processes allocate and free whole Lua heaps at a high rate, on whichever
// worker runs them. glibc's defaults give freed arena tops back to the kernel
// and grow them again with mprotect and page faults: measured, that was ~60% of
// the time of the timer benchmark. Keep freed memory for reuse instead.
void tune_allocator() {
  static std::once_flag once;
  std::call_once(once, [] {
    mallopt(M_TRIM_THRESHOLD, 256 << 20);
    mallopt(M_TOP_PAD, 16 << 20);
    mallopt(M_MMAP_THRESHOLD, 4 << 20);
  });
}

}  // namespace

void check_yields(const runtime::module_registry& modules, const dispatcher::registry& commands) {
  for (const runtime::module_def* def : modules.list()) {
    for (const runtime::yield_type* y : modules.exports_of(*def).yields) {
      if (!commands.has(y->command)) {
        throw std::logic_error("module " + std::string(def->name) + " yields " + y->name + " (" +
                               std::string(runtime::command_name(y->command)) +
                               ") but no dispatcher handles it");
      }
    }
  }
}

engine::engine(runtime::scheduler_options opts) : engine(engine_options{opts, {}, {}}) {}

namespace {

std::unique_ptr<dispatcher::store_backend> store_for(const engine_options& opts) {
  if (!opts.postgres.conninfo.empty())
    return std::make_unique<dispatcher::postgres_store>(opts.postgres);
  return std::make_unique<dispatcher::sqlite_store>(opts.data_dir);
}

}  // namespace

engine::engine(engine_options opts) : storage_(store_for(opts)) {
  tune_allocator();
  clock_.register_in(registry_);
  fetch_.register_in(registry_);
  storage_.register_in(registry_);
  values_.register_in(registry_);
  registry_.freeze();
  // The host chooses the modules, as a Lua host calls luaL_openlibs.
  if (opts.scheduler.modules.empty()) opts.scheduler.modules = modules::all();
  scheduler_ = std::make_unique<runtime::scheduler>(opts.scheduler, registry_);
  check_yields(scheduler_->modules(), registry_);
  clock_.attach(*scheduler_);
  clock_.start();
  fetch_.start();
  storage_.start();  // throws (naming the file) when the database cannot be used
  scheduler_->start();
}

engine::~engine() { stop(); }

void engine::stop() {
  if (scheduler_) scheduler_->stop();
  clock_.stop();
  fetch_.stop();
  storage_.stop();
}

}  // namespace luad::server
