// Runs a store test once per backend: SQLite in a fresh folder, and
// PostgreSQL in a fresh database of a real server (one per test process,
// started on first use). The store means the same on both (issue 16).
#pragma once

#include <doctest/doctest.h>

#include <functional>
#include <string>

#include "server/engine.hpp"
#include "tests/postgres_server.hpp"
#include "tests/support.hpp"

namespace luad::test {

inline postgres_server& shared_postgres() {
  static postgres_server pg;
  return pg;
}

/// Engine options with two workers and the SQLite store in `d`.
inline server::engine_options with_data(const temp_dir& d, unsigned workers = 2) {
  server::engine_options o;
  o.scheduler = runtime::scheduler_options::with_workers(workers);
  o.data_dir = d.path().string();
  return o;
}

/// Calls `body` with engine options for SQLite, then for PostgreSQL; `name`
/// says which ("sqlite" or "postgres") for the test's messages.
inline void for_each_store_backend(
    const std::function<void(const char* name, server::engine_options)>& body,
    unsigned workers = 2) {
  {
    temp_dir d("luad_store");
    server::engine_options o = with_data(d, workers);
    std::string backend = "sqlite";
    CAPTURE(backend);
    body("sqlite", o);
  }
  {
    server::engine_options o;
    o.scheduler = runtime::scheduler_options::with_workers(workers);
    o.postgres.conninfo = shared_postgres().new_database();
    std::string backend = "postgres";
    CAPTURE(backend);
    body("postgres", o);
  }
}

}  // namespace luad::test
