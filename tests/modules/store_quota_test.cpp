// Byte quotas of store namespaces (dispatcher/storage.cpp) against a real
// SQLite file: a write past the quota fails with `limit` and writes nothing;
// overwrites, deletes and expiry give bytes back; the totals are summed again
// when the file is opened.
#include <doctest/doctest.h>
#include <sqlite3.h>

#include <string>
#include <vector>

#include "tests/modules/store_backends.hpp"
#include "tests/support.hpp"

using luad::runtime::exit_reason;
using luad::runtime::value;
using luad::server::engine;
using luad::server::engine_options;
using luad::test::eventually;
using luad::test::run_lua;
using luad::test::temp_dir;
using luad::test::with_data;

namespace {

std::vector<value> run_in(engine& eng, const std::string& ns, const std::string& source) {
  luad::runtime::spawn_options o;
  o.ctx.permissions = {"store:" + ns};
  auto e = run_lua(source, std::move(o), &eng);
  REQUIRE_MESSAGE(e.reason == exit_reason::normal, e.err.message);
  return e.results;
}

// The bytes (keys + values) of `ns`, summed from the file itself.
long long bytes_in_file(const std::string& db_path, const std::string& ns) {
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  REQUIRE(sqlite3_prepare_v2(db, "SELECT total(length(key) + length(value)) FROM kv WHERE ns = ?1",
                             -1, &st, nullptr) == SQLITE_OK);
  sqlite3_bind_blob(st, 1, ns.data(), static_cast<int>(ns.size()), SQLITE_TRANSIENT);
  REQUIRE(sqlite3_step(st) == SQLITE_ROW);
  auto n = static_cast<long long>(sqlite3_column_double(st, 0));
  sqlite3_finalize(st);
  sqlite3_close(db);
  return n;
}

// The same, from whichever database `o` names.
long long bytes_stored(const luad::server::engine_options& o, const std::string& ns) {
  if (o.postgres.conninfo.empty()) return bytes_in_file(o.data_dir + "/luad.db", ns);
  return std::stoll(luad::test::postgres_server::scalar(
      o.postgres.conninfo,
      "SELECT coalesce(sum(length(key) + length(value)), 0) FROM luad_kv WHERE ns = '" + ns + "'"));
}

}  // namespace

TEST_CASE("store quota: a write past the namespace's quota fails with limit, on both backends") {
  luad::test::for_each_store_backend([](const char*, luad::server::engine_options o) {
    engine eng(o);
    eng.storage().set_quotas({0, {{"small", 100'000}}});
    auto r = run_in(eng, "small", R"(
    local store = require("store")
    local big = ("x"):rep(40000)
    assert(store.set("a", big))
    assert(store.set("b", big))
    local ok, err = store.set("c", big)          -- 120 kB > 100 kB
    local ok2, err2 = store.incr("n")             -- small: still fits
    assert(store.set("a", big))                   -- an overwrite grows nothing
    local ok3 = store.cas("b", nil, big)          -- (b exists: no swap)
    return ok, err.kind, err.message, store.get("c"), ok2, ok3)");
    CHECK(r.at(0).is_nil());
    CHECK(r.at(1) == value("limit"));
    CHECK(r.at(2).get<std::string>()->find("quota of 100000") != std::string::npos);
    CHECK(r.at(3).is_nil());  // nothing written
    CHECK(r.at(4) == value(std::int64_t{1}));
    CHECK(r.at(5) == value(false));
    // The ledger matches the file, byte for byte.
    CHECK(static_cast<long long>(eng.storage().namespace_bytes("small")) ==
          bytes_stored(o, "small"));

    // Another namespace, without a quota here, is not affected.
    run_in(eng, "other", R"(assert(require("store").set("c", ("y"):rep(150000))))");

    // A delete gives its bytes back, and the write that failed now fits.
    r = run_in(eng, "small", R"(
    local store = require("store")
    assert(store.delete("a"))
    return store.set("c", ("x"):rep(40000)))");
    CHECK(r.at(0) == value(true));
    CHECK(static_cast<long long>(eng.storage().namespace_bytes("small")) ==
          bytes_stored(o, "small"));
  });
}

TEST_CASE("store quota: the totals are summed again at open, and expiry gives bytes back") {
  temp_dir d("luad_quota");
  std::string db = (d.path() / "luad.db").string();
  {
    engine eng(with_data(d));
    run_in(eng, "q", R"(
      local store = require("store")
      assert(store.set("kept", ("k"):rep(30000)))
      assert(store.set("brief", ("b"):rep(30000), {ttl = 0.05})))");
  }
  engine eng(with_data(d));
  eng.storage().set_quotas({80'000, {}});  // the default quota this time
  long long at_open = bytes_in_file(db, "q");
  CHECK(at_open > 60'000);
  CHECK(static_cast<long long>(eng.storage().namespace_bytes("q")) == at_open);
  // The expired row still counts until the sweep deletes it (every second).
  auto r = run_in(eng, "q", R"(
    local store = require("store")
    local ok, err = store.set("more", ("m"):rep(30000))
    return ok, err and err.kind)");
  CHECK(r.at(1) == value("limit"));
  CHECK(eventually([&] { return eng.storage().namespace_bytes("q") < 40'000; },
                   std::chrono::seconds(5)));
  CHECK(static_cast<long long>(eng.storage().namespace_bytes("q")) == bytes_in_file(db, "q"));
  r = run_in(eng, "q", R"(return require("store").set("more", ("m"):rep(30000)))");
  CHECK(r.at(0) == value(true));
}
