// require of file packages: resolution below the script root, per-process
// caching, errors, the root rule, cycles, yields and kills inside a package.
#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <string_view>

#include "runtime/process.hpp"
#include "runtime/scheduler.hpp"
#include "tests/support.hpp"

namespace {

namespace fs = std::filesystem;
using luad::runtime::error_kind;
using luad::runtime::exit_info;
using luad::runtime::exit_reason;
using luad::runtime::spawn_options;
using luad::runtime::value;
using luad::test::eventually;
using luad::test::has;
using luad::test::run_lua;
using luad::test::shared_engine;
using luad::test::temp_dir;
using luad::test::wait_exit;

// The fixture packages, as a canonical path (what error messages show).
std::string packages() {
  return fs::canonical(fs::path(LUAD_SOURCE_DIR) / "tests" / "lua" / "packages").string();
}

// Runs inline `source` with the fixture packages as its script root.
exit_info run_pkg(std::string_view source, spawn_options opts = {}) {
  opts.ctx.script_root = packages();
  return run_lua(source, std::move(opts));
}

void check_true(const exit_info& e) {
  CHECK_MESSAGE(e.reason == exit_reason::normal, e.err.message);
  REQUIRE(e.results.size() == 1);
  CHECK(e.results[0] == value(true));
}

// Spawns the file `main` (through the scheduler's code cache) with `root` as
// script root; returns its exit as a future.
std::future<exit_info> spawn_file(const std::string& main, const std::string& root,
                                  luad::runtime::pid* id = nullptr, spawn_options opts = {}) {
  auto done = std::make_shared<std::promise<exit_info>>();
  auto fut = done->get_future();
  opts.ctx.script_root = root;
  opts.on_exit = [done](const exit_info& info) { done->set_value(info); };
  auto& sched = shared_engine().scheduler();
  luad::runtime::pid got = *sched.spawn(sched.code().get(main), std::move(opts));
  REQUIRE(static_cast<bool>(got));
  if (id) *id = got;
  return fut;
}

// True once process `id` waits in receive.
bool receiving(luad::runtime::pid id) {
  auto* p = shared_engine().scheduler().find(id);
  if (!p) return false;
  bool r = std::string_view(p->status()) == "receiving";
  p->release_ref();
  return r;
}

}  // namespace

TEST_CASE("require: a `return M` package keeps its locals private") {
  check_true(run_pkg(R"(
    local counter = require("counter")
    assert(counter.bump() == 1 and counter.bump() == 2)
    assert(counter.count == nil, "locals stay private")
    assert(counter.value() == 2)
    return true)"));
}

TEST_CASE("require: a package may return a function") {
  auto e = run_pkg(
      "local greet = require('greet') assert(type(greet) == 'function')\n"
      "return greet('luad')");
  REQUIRE(e.reason == exit_reason::normal);
  CHECK(e.results.at(0) == value("hello, luad"));
}

TEST_CASE("require: a package loads once per process and every requirer shares its value") {
  const char* source = R"(
    local a = require("counter")
    local b = require("counter")
    assert(a == b)
    a.bump()
    assert(b.value() == 1)
    assert(require("nothing") == true and side_effect == "ran", "nil result becomes true")
    side_effect = nil
    assert(require("nothing") == true and side_effect == nil, "not run twice")
    return loads)";
  auto e = run_pkg(source);
  REQUIRE_MESSAGE(e.reason == exit_reason::normal, e.err.message);
  CHECK(e.results.at(0) == value(std::int64_t{1}));
  e = run_pkg(source);  // another process loads it again, for itself
  REQUIRE(e.reason == exit_reason::normal);
  CHECK(e.results.at(0) == value(std::int64_t{1}));
}

TEST_CASE("require: a folder's init.lua and nested dotted names") {
  check_true(run_pkg(R"(
    local shapes = require("shapes")
    assert(shapes.name == "shapes")
    assert(shapes.circle == require("shapes.circle"), "shared with the package that required it")
    assert(math.abs(shapes.circle.area(1) - math.pi) < 1e-9)
    local c = require("deep.a.b.c")
    assert(c.depth == 3)
    assert(c.args[1] == "deep.a.b.c", "a package gets its name")
    assert(c.args[2]:find("/deep/a/b/c.lua$"), "and its path")
    return true)"));
}

TEST_CASE("require: packages run in the process's globals") {
  check_true(run_pkg(R"(
    main_marker = 42
    assert(require("globals") == true, "_ENV is the process's globals")
    assert(seen_main == 42 and set_by_package == true)
    return true)"));
}

TEST_CASE("require: a missing package lists every place it looked") {
  auto e = run_pkg("return pcall(require, 'no.such.pkg')");
  REQUIRE(e.reason == exit_reason::normal);
  REQUIRE(e.results.size() == 2);
  CHECK(e.results[0] == value(false));
  const std::string* msg = e.results[1].get<std::string>();
  REQUIRE(msg);
  CHECK(has(*msg, "module 'no.such.pkg' not found"));
  CHECK(has(*msg, "no luad module 'no.such.pkg' (available: "));
  CHECK(has(*msg, "time"));
  CHECK(has(*msg, std::string("no file '").append(packages()).append("/no/such/pkg.lua'")));
  CHECK(has(*msg, std::string("no file '").append(packages()).append("/no/such/pkg/init.lua'")));

  e = run_pkg("local x = 1\nrequire('nope')");  // uncaught: the process ends, with the position
  REQUIRE(e.reason == exit_reason::error);
  CHECK(has(e.err.message, "test.lua:2: module 'nope' not found"));
}

TEST_CASE("require: a syntax error in a package names its file and line") {
  auto e = run_pkg("return pcall(require, 'bad_syntax')");
  REQUIRE(e.reason == exit_reason::normal);
  CHECK(e.results.at(0) == value(false));
  const std::string* msg = e.results.at(1).get<std::string>();
  REQUIRE(msg);
  CHECK(has(*msg, "error loading module 'bad_syntax'"));
  CHECK(has(*msg, std::string(packages()).append("/bad_syntax.lua:3:")));
  e = run_pkg("require('bad_syntax')");
  REQUIRE(e.reason == exit_reason::error);
  CHECK(has(e.err.message, "bad_syntax.lua:3:"));
}

TEST_CASE("require: a runtime error in a package keeps its own position, and may be retried") {
  check_true(run_pkg(R"(
    local ok, err = pcall(require, "boom")
    assert(not ok and err:find("boom.lua:3: boom at load 1", 1, true), err)
    ok, err = pcall(require, "boom")
    assert(not ok and err:find("boom.lua:3: boom at load 1", 1, true), "runs again: " .. err)
    -- a coroutine that dies loading it leaves no stale "loading" mark either
    local co = coroutine.create(function() return require("boom") end)
    ok, err = coroutine.resume(co)
    assert(not ok and err:find("boom at load", 1, true), err)
    ok, err = pcall(coroutine.wrap(function() return require("boom") end))
    assert(not ok and err:find("boom at load", 1, true), err)
    ok, err = pcall(require, "boom")
    assert(not ok and err:find("boom at load", 1, true), "not a cycle: " .. err)
    return true)"));
  auto e = run_pkg("require('boom')");
  REQUIRE(e.reason == exit_reason::error);
  CHECK(has(e.err.message, "boom.lua:3: boom at load 1"));
  CHECK(has(e.err.traceback, "boom.lua:3: in main chunk"));  // the package's frame is kept
}

TEST_CASE("require: names that could leave the root are refused with permission_denied") {
  check_true(run_pkg(R"(
    local names = {"..", "../counter", "/etc/passwd", "a/b", "a\\b", "a..b", ".counter",
                   "counter.", "", "coun\0ter", "C:\\x"}
    for _, name in ipairs(names) do
      local ok, err = pcall(require, name)
      assert(not ok and type(err) == "table", name)
      assert(err.kind == "permission_denied", name .. ": " .. tostring(err))
    end
    return true)"));
  auto e = run_pkg("require('../../etc/passwd')");
  REQUIRE(e.reason == exit_reason::error);
  CHECK(e.err.kind == error_kind::permission_denied);
  CHECK(has(e.err.message, "'../../etc/passwd'"));
}

TEST_CASE("require: a symlink that leaves the root is refused, one inside it is followed") {
  temp_dir t("luad-require");
  t.write("outside/secret.lua", "return 'secret'");
  t.write("root/real.lua", "return 'real'");
  fs::create_symlink(t.path() / "outside" / "secret.lua", t.path() / "root" / "link.lua");
  fs::create_directory_symlink(t.path() / "outside", t.path() / "root" / "dirlink");
  fs::create_symlink("real.lua", t.path() / "root" / "alias.lua");
  t.write("root/main.lua", R"(
    for _, name in ipairs({"link", "dirlink.secret"}) do
      local ok, err = pcall(require, name)
      assert(not ok and type(err) == "table" and err.kind == "permission_denied", name)
      assert(err.message:find("outside the script root", 1, true), err.message)
    end
    return require("alias"))");
  auto fut = spawn_file((t / "root/main.lua").string(), (t / "root").string());
  auto e = wait_exit(fut);
  REQUIRE_MESSAGE(e.reason == exit_reason::normal, e.err.message);
  CHECK(e.results.at(0) == value("real"));
}

TEST_CASE("require: a cycle fails naming the whole cycle, and leaves nothing loading") {
  check_true(run_pkg(R"(
    local ok, err = pcall(require, "cycle_a")
    assert(not ok and err:find("require cycle: cycle_a -> cycle_b -> cycle_a", 1, true), err)
    assert(err:find("cycle_b.lua:2:", 1, true), "raised where the cycle closes: " .. err)
    ok, err = pcall(require, "cycle_a")
    assert(not ok and err:find("require cycle: cycle_a -> cycle_b -> cycle_a", 1, true),
           "the same error again, not a stale loading mark: " .. err)
    ok, err = pcall(require, "cycle_b")
    assert(not ok and err:find("require cycle: cycle_b -> cycle_a -> cycle_b", 1, true), err)
    assert(require("counter").bump() == 1, "other packages still load")
    assert(require("shapes").name == "shapes")
    return true)"));
}

TEST_CASE("require: a package may yield at its top level (sleep, receive)") {
  check_true(run_pkg(R"(
    local time = require("time")
    local t0 = time.monotonic()
    local s = require("sleepy")
    assert(s.slept and s.got == "ping")
    assert(time.monotonic() - t0 >= 0.015)
    assert(require("sleepy") == s)
    return true)"));
  check_true(run_pkg(R"(
    local ok, s = pcall(require, "sleepy")
    assert(ok and s.got == "ping", tostring(s))
    local co = coroutine.wrap(function() return require("sleepy") end)
    assert(co() == s, "inside a coroutine too, sharing the loaded value")
    return true)"));
  check_true(run_pkg(R"(
    local s = coroutine.wrap(function() return require("sleepy") end)()
    assert(s.slept and s.got == "ping")
    return true)"));
}

TEST_CASE("require: pcall(require, 'missing') returns false and a message") {
  auto e = run_pkg("local ok, err = pcall(require, 'missing') return ok, type(err), err");
  REQUIRE(e.reason == exit_reason::normal);
  CHECK(e.results.at(0) == value(false));
  CHECK(e.results.at(1) == value("string"));
  CHECK(has(*e.results.at(2).get<std::string>(), "module 'missing' not found"));
}

TEST_CASE("require: a kill or a limit still ends a process inside a package") {
  auto& eng = shared_engine();
  for (const char* source : {"require('waiter')", "pcall(require, 'waiter')"}) {
    CAPTURE(source);
    luad::runtime::pid id;
    spawn_options opts;
    opts.ctx.script_root = packages();
    auto fut = luad::test::spawn_lua(eng, source, std::move(opts), &id);
    REQUIRE(eventually([&] { return receiving(id); }));
    CHECK(eng.scheduler().kill(id));
    auto e = wait_exit(fut);
    CHECK(e.reason == exit_reason::killed);
  }
  spawn_options opts;
  opts.ctx.limits.instructions = 1'000'000;
  auto e = run_pkg("while true do pcall(require, 'spin') end", opts);
  CHECK(e.reason == exit_reason::limit);
  CHECK(has(e.err.message, "instruction"));
}

TEST_CASE("require: inline source without a script root cannot load file packages") {
  auto e =
      run_lua("local ok, err = pcall(require, 'counter') return ok, err, require('json') ~= nil");
  REQUIRE(e.reason == exit_reason::normal);
  CHECK(e.results.at(0) == value(false));
  const std::string* msg = e.results.at(1).get<std::string>();
  REQUIRE(msg);
  CHECK(has(*msg, "module 'counter' not found"));
  CHECK(has(*msg, "file packages need a script root"));
  CHECK(e.results.at(2) == value(true));
}

TEST_CASE("require: a package deleted while the process runs") {
  temp_dir t("luad-require");
  t.write("a.lua", "return { v = 'a' }");
  t.write("b.lua", "return { v = 'b' }");
  t.write("main.lua", R"(
    local time = require("time")
    local a = require("a")
    repeat time.sleep(0.005) until pcall(require, "go")
    assert(require("a") == a, "already loaded: still there")
    local ok, err = pcall(require, "b")
    assert(not ok and err:find("module 'b' not found", 1, true), tostring(err))
    return a.v)");
  std::string main = (t / "main.lua").string();
  auto fut = spawn_file(main, t.path().string());
  auto& code = shared_engine().scheduler().code();
  REQUIRE(eventually([&] {
    auto deps = code.dependencies(main);
    return std::find(deps.begin(), deps.end(), (t / "a.lua").string()) != deps.end();
  }));
  fs::remove((t / "a.lua").string());
  fs::remove((t / "b.lua").string());
  t.write("go.lua", "return true");
  auto e = wait_exit(fut);
  REQUIRE_MESSAGE(e.reason == exit_reason::normal, e.err.message);
  CHECK(e.results.at(0) == value("a"));
}

TEST_CASE("require: a package file replaced by a directory, or unreadable, is a clear error") {
  temp_dir t("luad-require");
  t.write("x.lua", "return 'file'");
  t.write("main.lua", "return pcall(require, 'x')");
  std::string main = (t / "main.lua").string();
  auto fut = spawn_file(main, t.path().string());
  auto e = wait_exit(fut);
  REQUIRE(e.reason == exit_reason::normal);
  CHECK(e.results.at(1) == value("file"));

  fs::remove((t / "x.lua").string());
  fs::create_directory((t / "x.lua").string());
  fut = spawn_file(main, t.path().string());
  e = wait_exit(fut);
  REQUIRE(e.reason == exit_reason::normal);
  CHECK(e.results.at(0) == value(false));
  const std::string* msg = e.results.at(1).get<std::string>();
  REQUIRE(msg);
  CHECK(
      has(*msg,
          std::string("'").append((t / "x.lua").string()).append("' is a directory, not a file")));

  if (::geteuid() == 0) return;  // root reads files whatever their mode
  t.write("locked.lua", "return 1");
  fs::permissions((t / "locked.lua").string(), fs::perms::none);
  t.write("main2.lua", "return pcall(require, 'locked')");
  fut = spawn_file((t / "main2.lua").string(), t.path().string());
  e = wait_exit(fut);
  REQUIRE(e.reason == exit_reason::normal);
  CHECK(e.results.at(0) == value(false));
  CHECK(has(*e.results.at(1).get<std::string>(), "cannot open script"));
}

TEST_CASE("require: dependencies are recorded per script, transitively") {
  temp_dir t("luad-require");
  t.write("lib/a.lua", "return require('lib.b') + 1");
  t.write("lib/b.lua", "return require('lib.c.init') + 1");
  t.write("lib/c/init.lua", "return 1");
  t.write("other.lua", "return 0");
  t.write("main.lua", "return require('lib.a'), require('time') ~= nil");
  std::string main = (t / "main.lua").string();
  auto fut = spawn_file(main, t.path().string());
  auto e = wait_exit(fut);
  REQUIRE_MESSAGE(e.reason == exit_reason::normal, e.err.message);
  CHECK(e.results.at(0) == value(std::int64_t{3}));
  auto& code = shared_engine().scheduler().code();
  CHECK(code.dependencies(main) == std::vector<std::string>{(t / "lib/a.lua").string(),
                                                            (t / "lib/b.lua").string(),
                                                            (t / "lib/c/init.lua").string()});
  CHECK(code.dependencies((t / "lib/b.lua").string()) ==
        std::vector<std::string>{(t / "lib/c/init.lua").string()});
  CHECK(code.dependencies((t / "other.lua").string()).empty());
}
