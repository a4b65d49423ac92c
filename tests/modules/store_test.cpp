// The store module and the storage dispatcher against a real SQLite file:
// the Lua API, namespaces and permissions, persistence, schema checks, group
// commit, expiry, injected disk faults, and a kill -9 during a write burst.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "tests/modules/store_backends.hpp"
#include "tests/support.hpp"

namespace fs = std::filesystem;
using luad::runtime::exit_reason;
using luad::runtime::value;
using luad::server::engine;
using luad::server::engine_options;
using luad::test::eventually;
using luad::test::has;
using luad::test::run_lua;
using luad::test::temp_dir;
using luad::test::with_data;

namespace {

luad::runtime::spawn_options granted(std::vector<std::string> perms) {
  luad::runtime::spawn_options o;
  o.ctx.permissions = std::move(perms);
  return o;
}

// Runs `source` on `eng` with `perms`, expecting a normal exit; returns its results.
std::vector<value> run_ok(engine& eng, const std::string& source,
                          std::vector<std::string> perms = {"store:demo"}) {
  auto e = run_lua(source, granted(std::move(perms)), &eng);
  REQUIRE_MESSAGE(e.reason == exit_reason::normal, e.err.message);
  return e.results;
}

// Counts rows straight from the file, bypassing luad.
long long count_rows(const std::string& db_path, const char* where = "1") {
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK);
  std::string sql = std::string("SELECT count(*) FROM kv WHERE ") + where;
  sqlite3_stmt* st = nullptr;
  REQUIRE(sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr) == SQLITE_OK);
  REQUIRE(sqlite3_step(st) == SQLITE_ROW);
  long long n = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  sqlite3_close(db);
  return n;
}

}  // namespace

TEST_CASE("store: get, set, delete, incr, cas and list from Lua, on SQLite and PostgreSQL") {
  luad::test::for_each_store_backend([](const char*, engine_options opts) {
    engine eng(opts);
    auto r = run_ok(eng, R"(
    local store = require("store")
    assert(store.set("a", {x = 1, list = {1, 2, 3}, name = "ü\0z"}))
    local v = store.get("a")
    assert(v.x == 1 and v.list[3] == 3 and v.name == "ü\0z")
    assert(store.get("missing") == nil)
    assert(store.incr("n") == 1)
    assert(store.incr("n", 41) == 42)
    assert(store.incr("n", -50) == -8)
    local ok, err = store.incr("a")
    assert(ok == nil and err.kind == "invalid", tostring(err))
    assert(store.cas("c", nil, "one") == true)
    assert(store.cas("c", nil, "two") == false)
    assert(store.cas("c", "one", "two") == true)
    assert(store.cas("c", 1, "three") == false)
    assert(store.get("c") == "two")
    assert(store.cas("c", "two", nil) == true)  -- nil new value deletes
    assert(store.get("c") == nil)
    assert(store.set("d", true) and store.delete("d") == true and store.delete("d") == false)
    for i = 1, 25 do assert(store.set(("k%03d"):format(i), i)) end
    assert(store.set("l", "not in k"))
    local items, cursor = store.list("k", {limit = 10})
    assert(#items == 10 and items[1].key == "k001" and items[10].value == 10 and cursor == "k010")
    items, cursor = store.list("k", {limit = 10, after = cursor})
    assert(#items == 10 and items[1].key == "k011")
    items, cursor = store.list("k", {limit = 10, after = cursor})
    assert(#items == 5 and items[5].key == "k025" and cursor == nil)
    local all = store.list()
    assert(#all == 28, #all)  -- a, n, k001..k025, l
    return true)");
    CHECK(r.at(0) == value(true));
  });
}

TEST_CASE("store: misuse raises, bad values fail with invalid or limit, on both backends") {
  luad::test::for_each_store_backend([](const char*, engine_options opts) {
    engine eng(opts);
    luad::runtime::spawn_options o = granted({"store:demo"});
    o.ctx.limits.message_bytes = 1000;
    auto e = run_lua(R"(
    local store = require("store")
    local function raises(f, ...) local ok = pcall(f, ...) return not ok end
    assert(raises(store.get, {}) and raises(store.get, "") and raises(store.get, ("k"):rep(1025)))
    assert(raises(store.set, "k", nil))
    assert(raises(store.set, "k", 1, {ttl = -1}) and raises(store.set, "k", 1, {ttl = 0}))
    assert(raises(store.cas, "k", {}, 1))
    assert(raises(store.list, "p", {limit = 0}) and raises(store.list, "p", {limit = 5000}))
    local v, err = store.set("f", function() end)
    assert(v == nil and err.kind == "invalid" and err.message:find("function"), err.message)
    v, err = store.set("big", ("x"):rep(2000))
    assert(v == nil and err.kind == "limit", tostring(err))
    return true)",
                     o, &eng);
    REQUIRE_MESSAGE(e.reason == exit_reason::normal, e.err.message);
    CHECK(e.results.at(0) == value(true));
  });
}

TEST_CASE("store: a process sees only its own namespace and needs a permission, on both backends") {
  luad::test::for_each_store_backend([](const char*, engine_options opts) {
    engine eng(opts);
    run_ok(eng, "assert(require('store').set('k', 'from a'))", {"store:a"});
    auto b = run_ok(eng, "return require('store').get('k')", {"store:b"});
    CHECK(b.at(0).is_nil());
    auto a = run_ok(eng, "return require('store').get('k')", {"store:a"});
    CHECK(a.at(0) == value("from a"));
    auto none = run_ok(eng, R"(
    local v, err = require('store').get('k')
    return v, err.kind, err.message)",
                       {});
    CHECK(none.at(1) == value("permission_denied"));
    CHECK(has(*none.at(2).get<std::string>(), "store:NAME"));
    // Children inherit the namespace.
    auto child = run_ok(eng, R"(
    local process = require("process")
    local pid = process.spawn("tests/lua/children/store_reader.lua", process.self(), "k")
    return process.receive("value", 10).payload)",
                        {"store:a"});
    CHECK(child.at(0) == value("from a"));
  });
}

TEST_CASE("store: without a data directory every call fails with unavailable") {
  auto r = run_ok(luad::test::shared_engine(), R"(
    local v, err = require('store').set('k', 1)
    return err.kind, err.message)");
  CHECK(r.at(0) == value("unavailable"));
  CHECK(has(*r.at(1).get<std::string>(), "--data"));
}

TEST_CASE("store: values survive a restart; expired keys are invisible, then deleted") {
  temp_dir d("luad_store");
  {
    engine eng(with_data(d));
    run_ok(eng, R"(
      local store = require("store")
      assert(store.set("kept", {1, 2, 3}))
      assert(store.set("brief", "gone soon", {ttl = 0.05}))
      assert(store.get("brief") == "gone soon"))");
  }
  engine eng(with_data(d));
  auto r = run_ok(eng, R"(
    local store = require("store")
    require("time").sleep(0.1)  -- lets the 0.05 s ttl of "brief" run out
    local items = store.list()
    return store.get("kept")[3], store.get("brief"), #items)");
  CHECK(r.at(0) == value(3));
  CHECK(r.at(1).is_nil());
  CHECK(r.at(2) == value(1));
  // The background sweep (every second when idle) removes the expired row.
  std::string db = (d.path() / "luad.db").string();
  CHECK(eventually([&] { return count_rows(db, "key = x'6272696566'") == 0; },
                   std::chrono::seconds(5)));
  CHECK(count_rows(db) == 1);
}

TEST_CASE("store: a newer schema, a corrupt file or a foreign database is refused clearly") {
  temp_dir d("luad_store");
  std::string db = (d.path() / "luad.db").string();
  { engine eng(with_data(d)); }  // creates the schema
  {
    sqlite3* h = nullptr;
    REQUIRE(sqlite3_open(db.c_str(), &h) == SQLITE_OK);
    REQUIRE(sqlite3_exec(h, "UPDATE meta SET value = '99' WHERE key = 'schema_version'", nullptr,
                         nullptr, nullptr) == SQLITE_OK);
    sqlite3_close(h);
  }
  auto message_of = [&] {
    try {
      engine eng(with_data(d));
    } catch (const std::exception& e) {
      return std::string(e.what());
    }
    return std::string("opened");
  };
  std::string m = message_of();
  CHECK(has(m, "newer luad"));
  CHECK(has(m, db));

  fs::remove_all(d.path());
  fs::create_directories(d.path());
  std::ofstream(db) << std::string(8192, 'x');  // not a database at all
  m = message_of();
  CHECK(has(m, "not a database"));

  fs::remove(db);
  {
    sqlite3* h = nullptr;
    REQUIRE(sqlite3_open(db.c_str(), &h) == SQLITE_OK);
    REQUIRE(sqlite3_exec(h, "CREATE TABLE invoices (id INTEGER)", nullptr, nullptr, nullptr) ==
            SQLITE_OK);
    sqlite3_close(h);
  }
  m = message_of();
  CHECK(has(m, "not a luad store"));
}

TEST_CASE(
    "store: concurrent writers are committed in groups and all acknowledged, on both backends") {
  luad::test::for_each_store_backend([](const char* backend, engine_options opts) {
    engine eng(opts);
    constexpr int writers = 1000 / luad::test::sanitizer_scale;
    luad::runtime::spawn_options o = granted({"store:demo"});
    o.args = {value(writers)};
    auto e = run_lua(R"(
    local process = require("process")
    local n = ...
    for i = 1, n do process.spawn("tests/lua/children/store_writer.lua", process.self(), "w" .. i, 10) end
    local acked = 0
    for _ = 1, n do acked = acked + process.receive("done", 60).payload end
    return acked)",
                     o, &eng);
    REQUIRE_MESSAGE(e.reason == exit_reason::normal, e.err.message);
    CHECK(e.results.at(0) == value(writers * 10));
    if (std::string_view(backend) == "sqlite")
      CHECK(count_rows((fs::path(opts.data_dir) / "luad.db").string()) == writers * 10);
    auto listed = run_ok(eng, "return #require('store').list('w', {limit = 1000})");
    CHECK(listed.at(0) == value(std::min(writers * 10, 1000)));
    // Group commit: far fewer transactions than writes (writes wait together
    // when they come faster than commits end).
    CHECK(eng.storage().committed_writes() >= static_cast<std::uint64_t>(writers * 10));
    CHECK(eng.storage().commits() < eng.storage().committed_writes() / 4);
  });
}

TEST_CASE(
    "store: a full disk or a read-only database fails writers with unavailable, not a crash") {
  luad::test::for_each_store_backend([](const char*, engine_options opts) {
    engine eng(opts);
    run_ok(eng, "assert(require('store').set('before', 1))");
    eng.storage().inject(luad::dispatcher::storage::fault::disk_full);
    auto r = run_ok(eng, R"(
    local store = require("store")
    local failed, kind = 0, nil
    for i = 1, 200 do
      local ok, err = store.set("big" .. i, ("x"):rep(4000) .. i)
      if not ok then failed = failed + 1; kind = err.kind end
    end
    return failed, kind, store.get("before"))");
    CHECK(r.at(0).get<std::int64_t>());
    CHECK(*r.at(0).get<std::int64_t>() > 0);
    CHECK(r.at(1) == value("unavailable"));
    CHECK(r.at(2) == value(1));  // reads go on

    eng.storage().inject(luad::dispatcher::storage::fault::read_only);
    r = run_ok(eng, R"(
    local ok, err = require("store").set("ro", 1)
    return ok, err.kind, err.retryable)");
    CHECK(r.at(0).is_nil());
    CHECK(r.at(1) == value("unavailable"));

    eng.storage().inject(luad::dispatcher::storage::fault::none);
    r = run_ok(eng, "return require('store').set('after', 2)");
    CHECK(r.at(0) == value(true));
  });
}

TEST_CASE("store: kill -9 during a write burst loses no acknowledged write") {
  temp_dir d("luad_store");
  std::string out = (d.path() / "acked.txt").string();
  std::string data = (d.path() / "data").string();
  pid_t child = fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    // The child: luad run with writers that log every acknowledged key.
    int fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 2);
    ::chdir(LUAD_SOURCE_DIR);
    execl(LUAD_BINARY, LUAD_BINARY, "run", "--data", data.c_str(), "--allow", "store:crash",
          "tests/lua/children/store_burst.lua", static_cast<char*>(nullptr));
    _exit(127);
  }
  auto acked_keys = [&] {
    std::set<std::string> keys;
    std::ifstream in(out);
    for (std::string line; std::getline(in, line);) {
      auto at = line.find("acked ");
      if (at != std::string::npos) keys.insert(line.substr(at + 6));
    }
    return keys;
  };
  REQUIRE(eventually([&] { return acked_keys().size() >= 2000; }, std::chrono::seconds(60)));
  ::kill(child, SIGKILL);
  int status = 0;
  waitpid(child, &status, 0);
  CHECK(WIFSIGNALED(status));
  std::set<std::string> acked = acked_keys();  // everything logged before the kill
  // Open the file afterwards and check every acknowledged key is there.
  engine_options o = with_data(d);
  o.data_dir = data;
  engine eng(o);
  std::size_t checked = 0;
  auto keys = std::vector<std::string>(acked.begin(), acked.end());
  luad::runtime::spawn_options so = granted({"store:crash"});
  value::array arr;
  for (const auto& k : keys) arr.emplace_back(k);
  so.args = {value(arr)};
  auto e = run_lua(R"(
    local keys = ...
    local store = require("store")
    local missing = {}
    for _, k in ipairs(keys) do
      if store.get(k) == nil then missing[#missing + 1] = k end
    end
    return #keys, #missing, missing[1])",
                   so, &eng);
  REQUIRE_MESSAGE(e.reason == exit_reason::normal, e.err.message);
  checked = static_cast<std::size_t>(*e.results.at(0).get<std::int64_t>());
  CHECK(checked == keys.size());
  CHECK(e.results.at(1) == value(0));
}
