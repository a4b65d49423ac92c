// The engine: the command registry, the dispatchers and the scheduler, started
// and stopped in the right order. `luad run`, tests and benchmarks use it.
#pragma once

#include <memory>
#include <string>

#include "dispatcher/clock.hpp"
#include "dispatcher/fetch.hpp"
#include "dispatcher/postgres_store.hpp"
#include "dispatcher/registry.hpp"
#include "dispatcher/storage.hpp"
#include "dispatcher/values.hpp"
#include "runtime/scheduler.hpp"

namespace luad::server {

/// What an engine needs beyond the scheduler's options.
struct engine_options {
  runtime::scheduler_options scheduler;
  /// Folder holding the store's SQLite file (`luad.db`); created if missing.
  /// Empty: store commands fail with `unavailable` ("no data directory").
  std::string data_dir;
  /// With a connection string, the store and the journal live on that
  /// PostgreSQL server instead ([storage] backend = "postgres"), and
  /// `data_dir` is not used.
  dispatcher::postgres_options postgres;
};

/// Throws std::logic_error naming the module and yield type when a yield type
/// of `modules` sends a command that `commands` has no handler for.
void check_yields(const runtime::module_registry& modules, const dispatcher::registry& commands);

class engine {
 public:
  /// Registers every dispatcher, freezes the registry, checks that each
  /// module's yield types have a handler (throws std::logic_error if not), and
  /// starts the dispatchers and the workers.
  explicit engine(runtime::scheduler_options opts = {});
  explicit engine(engine_options opts);
  /// Stops the scheduler first (every process ends), then the dispatchers.
  ~engine();
  engine(const engine&) = delete;
  engine& operator=(const engine&) = delete;

  runtime::scheduler& scheduler() { return *scheduler_; }
  /// The frozen command registry (command id → dispatcher).
  const dispatcher::registry& commands() const { return registry_; }
  dispatcher::clock& clock() { return clock_; }
  dispatcher::fetch& fetch() { return fetch_; }
  dispatcher::storage& storage() { return storage_; }
  /// Same as the destructor, callable earlier. Idempotent.
  void stop();

 private:
  dispatcher::registry registry_;
  dispatcher::clock clock_;
  dispatcher::fetch fetch_;
  dispatcher::storage storage_;
  dispatcher::values values_;  // stateless: nothing to start or stop
  std::unique_ptr<runtime::scheduler> scheduler_;
};

}  // namespace luad::server
