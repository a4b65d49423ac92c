// What the journal tests share (journal_test.cpp, journal_postgres_test.cpp):
// entries and runs to write, blocking wrappers around the callbacks, and a
// loop over the backends.
#pragma once

#include <doctest/doctest.h>

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "dispatcher/journal.hpp"
#include "dispatcher/postgres_store.hpp"
#include "dispatcher/storage.hpp"
#include "runtime/message_codec.hpp"
#include "tests/modules/store_backends.hpp"
#include "tests/support.hpp"

namespace luad::test::journal_support {

using namespace luad::dispatcher;
using luad::runtime::command_id;
using luad::runtime::error_kind;
using luad::runtime::outcome;
using luad::runtime::status;
using luad::runtime::value;
using luad::test::eventually;
using luad::test::has;
using luad::test::temp_dir;

inline std::string encoded(const value& v) {
  std::string out;
  luad::runtime::encode_value(v, out);
  return out;
}

// One callback's answer, waited for with eventually().
template <class T>
class answer {
 public:
  std::function<void(T)> callback() {
    return [s = state_](T v) {
      std::lock_guard lock(s->mu);
      s->got.emplace(std::move(v));
    };
  }
  T take() {
    REQUIRE(eventually([&] {
      std::lock_guard lock(state_->mu);
      return state_->got.has_value();
    }));
    std::lock_guard lock(state_->mu);
    return std::move(*state_->got);
  }

 private:
  struct shared {
    std::mutex mu;
    std::optional<T> got;
  };
  std::shared_ptr<shared> state_ = std::make_shared<shared>();
};

inline run_record run_named(const std::string& id) {
  run_record r;
  r.id = id;
  r.workflow = "orders";
  r.owner = "workflow:orders";
  r.script = "workflows/orders.lua";
  r.code_hash = "abc123";
  r.args = encoded(value::array{value("order-1"), value(3)});
  return r;
}

// A sleep of `seconds` at `step`, done with `result` (or only started).
inline journal_entry entry(const std::string& run, std::int64_t step,
                           const value& result = value(true), step_state state = step_state::done) {
  journal_entry e;
  e.run = run;
  e.step = step;
  e.command = command_id::clock_sleep;
  e.args = encoded(value(1.5));
  e.state = state;
  if (state == step_state::done) e.result = encoded(result);
  return e;
}

inline status create(storage& s, const std::string& id) {
  answer<status> a;
  s.create_run(run_named(id), a.callback());
  return a.take();
}

inline status append(storage& s, journal_entry e) {
  answer<status> a;
  s.append(std::move(e), a.callback());
  return a.take();
}

inline outcome apply(storage& s, journal_entry e, value store_args) {
  answer<outcome> a;
  s.apply_and_append(std::move(e), std::move(store_args), a.callback());
  return a.take();
}

inline status set_state(storage& s, const std::string& run, run_state st, std::string detail) {
  answer<status> a;
  s.set_state(run, st, std::move(detail), a.callback());
  return a.take();
}

inline value store_set(const std::string& key, const value& v) {
  return value::map{{"op", "set"}, {"ns", "jt"}, {"key", key}, {"value", encoded(v)}};
}

inline bool succeeded(const status& s) { return s.ok(); }
inline bool succeeded(const outcome& o) { return !o.err; }

inline std::vector<std::string> ids(const std::vector<run_record>& runs) {
  std::vector<std::string> out;
  out.reserve(runs.size());
  for (const auto& r : runs) out.push_back(r.id);
  return out;
}

// The message of history(run)'s error, which must be `invalid`.
inline std::string history_error(storage& s, const char* run) {
  auto h = s.history(run);
  REQUIRE_FALSE(h.ok());
  CHECK(h.error().kind == error_kind::invalid);
  return h.error().message;
}

// A storage on the PostgreSQL database `db` (not started).
inline std::unique_ptr<storage> on_postgres(const std::string& db) {
  postgres_options o;
  o.conninfo = db;
  return std::make_unique<storage>(std::make_unique<postgres_store>(std::move(o)));
}

// Each call opens a new storage (not started) on one backend's data.
using opener = std::function<std::unique_ptr<storage>()>;

// Runs `body` once per backend: SQLite in a fresh folder, then PostgreSQL in
// a fresh database of a real server. The journal means the same on both.
inline void for_each_backend(const std::function<void(const opener&)>& body) {
  {
    temp_dir d("luad_journal");
    std::string backend = "sqlite";
    CAPTURE(backend);
    body([&] { return std::make_unique<storage>(d.path().string()); });
  }
  {
    std::string db = luad::test::shared_postgres().new_database();
    std::string backend = "postgres";
    CAPTURE(backend);
    body([&] { return on_postgres(db); });
  }
}

}  // namespace luad::test::journal_support
