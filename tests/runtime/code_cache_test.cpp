// The bytecode cache: compile once per content, stat at most once per recheck,
// invalidation, LRU by bytes, capacity 0, compile errors, dependencies.
#include "runtime/code.hpp"

#include <doctest/doctest.h>

#include <atomic>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "runtime/process.hpp"
#include "runtime/scheduler.hpp"
#include "tests/support.hpp"

namespace {

namespace fs = std::filesystem;
using luad::runtime::chunk_ptr;
using luad::runtime::code_cache;
using luad::runtime::code_cache_options;
using luad::runtime::error_kind;
using luad::runtime::exit_info;
using luad::runtime::exit_reason;
using luad::runtime::value;
using luad::test::eventually;
using luad::test::has;
using luad::test::shared_engine;
using luad::test::temp_dir;
using luad::test::wait_exit;
using namespace std::chrono_literals;

code_cache_options with(std::size_t capacity, std::chrono::milliseconds recheck) {
  code_cache_options o;
  o.capacity_bytes = capacity;
  o.recheck = recheck;
  return o;
}

luad::runtime::pid spawn_chunk(const chunk_ptr& code, std::future<exit_info>& fut,
                               const std::string& root = {},
                               std::shared_ptr<const luad::runtime::code_pin> pin = nullptr) {
  auto done = std::make_shared<std::promise<exit_info>>();
  fut = done->get_future();
  luad::runtime::spawn_options opts;
  opts.ctx.script_root = root;
  opts.ctx.pinned_code = std::move(pin);
  opts.on_exit = [done](const exit_info& info) { done->set_value(info); };
  luad::runtime::pid id = *shared_engine().scheduler().spawn(code, std::move(opts));
  REQUIRE(static_cast<bool>(id));
  return id;
}

bool waiting(luad::runtime::pid id) {
  auto* p = shared_engine().scheduler().find(id);
  if (!p) return false;
  bool w =
      std::string_view(p->status()) != "runnable" && std::string_view(p->status()) != "running";
  p->release_ref();
  return w;
}

}  // namespace

TEST_CASE("code cache: 100 gets of one file compile it once") {
  temp_dir t("luad-code");
  t.write("s.lua", "return 1");
  for (auto recheck : {1000ms, 0ms}) {
    CAPTURE(recheck.count());
    code_cache cache(with(std::size_t{1} << 20, recheck));
    chunk_ptr first = cache.get((t / "s.lua").string());
    REQUIRE_FALSE(first->compile_error);
    for (int i = 1; i < 100; ++i) CHECK(cache.get((t / "s.lua").string()) == first);
    auto s = cache.stats();
    CHECK(s.compiles == 1);
    CHECK(s.hits == 99);
    CHECK(s.misses == 1);
    CHECK(s.compile_errors == 0);
    CHECK(s.entries == 1);
    CHECK(s.bytes >= first->bytecode.size());
    CHECK(cache.paths() == std::vector<std::string>{(t / "s.lua").string()});
  }
}

TEST_CASE("code cache: changed content is recompiled; running processes keep their code") {
  temp_dir t("luad-code");
  // The first version runs until go.lua exists: it is surely running when the
  // file changes, however slow the machine.
  t.write("job.lua",
          "local time = require('time')\n"
          "repeat time.sleep(0.005) until pcall(require, 'go') return 'v1'");
  code_cache cache(with(std::size_t{1} << 20, 0ms));
  chunk_ptr v1 = cache.get((t / "job.lua").string());
  std::future<exit_info> old_run;
  auto old_id = spawn_chunk(v1, old_run, t.path().string());
  REQUIRE(eventually([&] { return waiting(old_id); }));

  t.write("job.lua", "return 'v2'", 5s);
  chunk_ptr v2 = cache.get((t / "job.lua").string());
  CHECK(v2 != v1);
  CHECK(cache.stats().compiles == 2);
  std::future<exit_info> new_run;
  spawn_chunk(v2, new_run);
  auto e = wait_exit(new_run);
  REQUIRE_MESSAGE(e.reason == exit_reason::normal, e.err.message);
  CHECK(e.results.at(0) == value("v2"));
  t.write("go.lua", "return true");
  e = wait_exit(old_run);
  REQUIRE_MESSAGE(e.reason == exit_reason::normal, e.err.message);
  CHECK(e.results.at(0) == value("v1"));
  CHECK(cache.get((t / "job.lua").string()) == v2);
}

TEST_CASE("code cache: a changed package reaches new processes; running ones keep theirs") {
  temp_dir t("luad-code");
  t.write("pkg.lua", "return 'v1'");
  t.write("main.lua", R"(
    local first, time = require("pkg"), require("time")
    repeat time.sleep(0.005) until pcall(require, "go")  -- running while pkg changes
    return first, require("pkg"))");
  auto& cache = shared_engine().scheduler().code();
  std::future<exit_info> old_run;
  auto old_id = spawn_chunk(cache.get((t / "main.lua").string()), old_run, t.path().string());
  REQUIRE(eventually([&] { return waiting(old_id); }));

  t.write("pkg.lua", "return 'v2'", 5s);
  cache.invalidate((t / "pkg.lua").string());  // what the file watcher does
  t.write("go.lua", "return true");            // the change is done: both may finish
  std::future<exit_info> new_run;
  spawn_chunk(cache.get((t / "main.lua").string()), new_run, t.path().string());
  auto e = wait_exit(new_run);
  REQUIRE_MESSAGE(e.reason == exit_reason::normal, e.err.message);
  CHECK(e.results == std::vector<value>{value("v2"), value("v2")});
  e = wait_exit(old_run);
  REQUIRE_MESSAGE(e.reason == exit_reason::normal, e.err.message);
  CHECK(e.results == std::vector<value>{value("v1"), value("v1")});
}

TEST_CASE("code cache: a pinned process runs the pinned packages and scripts; others the files") {
  temp_dir t("luad-code");
  t.write("pkg.lua", "return 'old'");
  t.write("child.lua", "require('process').send((...), 'R', 'old child')");
  t.write("main.lua", R"(
    local process = require("process")
    process.spawn("child.lua", process.self())
    return require("pkg"), process.receive("R").payload)");
  auto& cache = shared_engine().scheduler().code();
  auto pin = std::make_shared<luad::runtime::code_pin>();
  pin->chunks[(t / "pkg.lua").string()] = cache.get((t / "pkg.lua").string());
  pin->chunks[(t / "child.lua").string()] = cache.get((t / "child.lua").string());
  CHECK(cache.cached((t / "pkg.lua").string()) == pin->chunks[(t / "pkg.lua").string()]);
  CHECK(cache.cached((t / "nothing.lua").string()) == nullptr);

  t.write("pkg.lua", "return 'new'", 5s);
  t.write("child.lua", "require('process').send((...), 'R', 'new child')", 5s);
  cache.invalidate((t / "pkg.lua").string());
  cache.invalidate((t / "child.lua").string());
  std::future<exit_info> pinned, current;
  spawn_chunk(cache.get((t / "main.lua").string()), pinned, t.path().string(), pin);
  spawn_chunk(cache.get((t / "main.lua").string()), current, t.path().string());
  auto e = wait_exit(pinned);
  REQUIRE_MESSAGE(e.reason == exit_reason::normal, e.err.message);
  CHECK(e.results == std::vector<value>{value("old"), value("old child")});
  e = wait_exit(current);
  REQUIRE_MESSAGE(e.reason == exit_reason::normal, e.err.message);
  CHECK(e.results == std::vector<value>{value("new"), value("new child")});
}

TEST_CASE("code cache: the same content with a new mtime is not recompiled") {
  temp_dir t("luad-code");
  t.write("s.lua", "return 'same'");
  code_cache cache(with(std::size_t{1} << 20, 0ms));
  chunk_ptr first = cache.get((t / "s.lua").string());
  fs::last_write_time((t / "s.lua").string(), fs::last_write_time((t / "s.lua").string()) + 10s);
  CHECK(cache.get((t / "s.lua").string()) == first);
  t.write("s.lua", "return 'same'", 20s);  // rewritten, same bytes
  CHECK(cache.get((t / "s.lua").string()) == first);
  cache.invalidate((t / "s.lua").string());
  CHECK(cache.get((t / "s.lua").string()) == first);
  auto s = cache.stats();
  CHECK(s.compiles == 1);
  CHECK(s.hits == 3);
}

TEST_CASE("code cache: a path is re-stated at most once per recheck, or after invalidate") {
  temp_dir t("luad-code");
  t.write("a.lua", "return 'a1'");
  t.write("b.lua", "return 'b1'");
  code_cache cache(with(std::size_t{1} << 20, std::chrono::hours(1)));
  chunk_ptr a1 = cache.get((t / "a.lua").string());
  chunk_ptr b1 = cache.get((t / "b.lua").string());
  t.write("a.lua", "return 'a2'", 5s);
  t.write("b.lua", "return 'b2'", 5s);
  CHECK(cache.get((t / "a.lua").string()) == a1);  // not re-checked yet
  cache.invalidate((t / "a.lua").string());
  chunk_ptr a2 = cache.get((t / "a.lua").string());
  CHECK(a2 != a1);
  CHECK(cache.get((t / "b.lua").string()) == b1);
  cache.invalidate_all();
  CHECK(cache.get((t / "b.lua").string()) != b1);
  CHECK(cache.get((t / "a.lua").string()) == a2);  // unchanged since: no compile
  CHECK(cache.stats().compiles == 4);
}

TEST_CASE("code cache: least recently used chunks are evicted past capacity_bytes") {
  temp_dir t("luad-code");
  for (const char* name : {"a", "b", "c"}) {
    t.write(std::string(name).append(".lua"), std::string("return '").append(name).append("'"));
  }
  std::size_t one = 0;
  {
    code_cache probe;
    probe.get((t / "a.lua").string());
    one = probe.stats().bytes;
  }
  REQUIRE(one > 0);
  code_cache cache(with(one * 2 + one / 2, 0ms));  // room for two
  chunk_ptr a = cache.get((t / "a.lua").string());
  chunk_ptr b = cache.get((t / "b.lua").string());
  CHECK(cache.get((t / "a.lua").string()) == a);  // a is now the most recent
  cache.get((t / "c.lua").string());              // evicts b
  auto s = cache.stats();
  CHECK(s.evictions == 1);
  CHECK(s.entries == 2);
  CHECK(s.bytes <= one * 2 + one / 2);
  CHECK(cache.paths() == std::vector<std::string>{(t / "a.lua").string(), (t / "c.lua").string()});
  CHECK(cache.get((t / "a.lua").string()) == a);
  chunk_ptr b2 = cache.get((t / "b.lua").string());  // compiled again
  CHECK(b2 != b);
  CHECK_FALSE(b->bytecode.empty());  // an evicted chunk stays valid for its holders
  CHECK(cache.stats().compiles == 4);

  cache.configure(with(0, 0ms));  // shrinking evicts at once
  CHECK(cache.stats().entries == 0);
  CHECK(cache.stats().bytes == 0);
}

TEST_CASE("code cache: capacity 0 compiles on every get") {
  temp_dir t("luad-code");
  t.write("s.lua", "return 1");
  code_cache cache(with(0, 1000ms));
  chunk_ptr first = cache.get((t / "s.lua").string());
  for (int i = 0; i < 4; ++i) CHECK(cache.get((t / "s.lua").string()) != first);
  auto s = cache.stats();
  CHECK(s.compiles == 5);
  CHECK(s.misses == 5);
  CHECK(s.hits == 0);
  CHECK(s.entries == 0);
  CHECK(s.bytes == 0);
}

TEST_CASE("code cache: compile errors are cached per content and reported") {
  temp_dir t("luad-code");
  t.write("bad.lua", "local = 1");
  code_cache cache(with(std::size_t{1} << 20, 0ms));
  chunk_ptr bad = cache.get((t / "bad.lua").string());
  REQUIRE(bad->compile_error);
  CHECK(bad->compile_error->kind == error_kind::syntax);
  CHECK(cache.get((t / "bad.lua").string()) == bad);
  auto err = cache.last_error((t / "bad.lua").string());
  REQUIRE(err);
  CHECK(has(err->message, (t / "bad.lua").string().append(":1:")));
  auto s = cache.stats();
  CHECK(s.compiles == 1);
  CHECK(s.compile_errors == 1);
  CHECK(s.hits == 1);

  t.write("bad.lua", "local x = 1 return x", 5s);
  CHECK_FALSE(cache.get((t / "bad.lua").string())->compile_error);
  CHECK_FALSE(cache.last_error((t / "bad.lua").string()));
  CHECK(cache.stats().compile_errors == 1);

  chunk_ptr missing = cache.get((t / "missing.lua").string());
  REQUIRE(missing->compile_error);
  CHECK(missing->compile_error->kind == error_kind::not_found);
  CHECK(cache.stats().entries == 1);  // a missing file is not cached
  fs::create_directory((t / "dir.lua").string());
  chunk_ptr dir = cache.get((t / "dir.lua").string());
  REQUIRE(dir->compile_error);
  CHECK(dir->compile_error->kind == error_kind::invalid);
}

TEST_CASE("code cache: a binary chunk on disk is refused") {
  temp_dir t("luad-code");
  chunk_ptr text = luad::runtime::compile("return 1", "x.lua");
  t.write("bin.lua", text->bytecode);
  code_cache cache;
  chunk_ptr c = cache.get((t / "bin.lua").string());
  REQUIRE(c->compile_error);
  CHECK(c->compile_error->kind == error_kind::invalid);
}

TEST_CASE("code cache: dependencies are transitive, sorted, and survive cycles") {
  code_cache cache;
  cache.add_dependency("/r/main.lua", "/r/a.lua");
  cache.add_dependency("/r/a.lua", "/r/b.lua");
  cache.add_dependency("/r/b.lua", "/r/a.lua");
  cache.add_dependency("/r/b.lua", "/r/main.lua");
  cache.add_dependency("/r/other.lua", "/r/c.lua");
  CHECK(cache.dependencies("/r/main.lua") == std::vector<std::string>{"/r/a.lua", "/r/b.lua"});
  CHECK(cache.dependencies("/r/a.lua") == std::vector<std::string>{"/r/b.lua", "/r/main.lua"});
  CHECK(cache.dependencies("/r/c.lua").empty());
  CHECK(cache.dependencies("/nowhere").empty());
}

TEST_CASE("code cache: concurrent gets, changes and invalidations") {
  temp_dir t("luad-code");
  for (int i = 0; i < 4; ++i) t.write(std::to_string(i).append(".lua"), "return 0");
  code_cache cache(with(4096, 0ms));
  std::atomic<bool> stop{false};
  std::atomic<int> bad{0};
  std::vector<std::thread> threads;
  for (int w = 0; w < 4; ++w) {
    threads.emplace_back([&, w] {
      for (int i = 0; i < 500; ++i) {
        chunk_ptr c = cache.get((t / std::to_string((w + i) % 4).append(".lua")).string());
        if (!c || (c->compile_error && c->compile_error->kind != error_kind::syntax)) ++bad;
      }
    });
  }
  std::thread writer([&] {
    for (int i = 0; !stop.load(); ++i) {
      t.write(std::to_string(i % 4).append(".lua"),
              std::string("return ").append(std::to_string(i)));
      if (i % 7 == 0) cache.invalidate_all();
      std::this_thread::yield();
    }
  });
  for (auto& th : threads) th.join();
  stop = true;
  writer.join();
  CHECK(bad.load() == 0);
  auto s = cache.stats();
  CHECK(s.hits + s.misses == 2000);
  CHECK(s.bytes <= 4096);
}

TEST_CASE(
    "code cache: resolve_from resolves beside a script file, as resolve does from its folder") {
  temp_dir dir("resolve");
  fs::create_directories(dir.path() / "sub");
  const std::string folder = fs::canonical(dir.path()).string();
  const std::string file = folder + "/sub/main.lua";
  code_cache cache;
  CHECK(cache.resolve_from(file, "child.lua") == folder + "/sub/child.lua");
  CHECK(cache.resolve_from(file, "../up.lua") == folder + "/up.lua");
  CHECK(cache.resolve_from(file, ".") == cache.resolve(folder + "/sub", "."));
  CHECK(cache.resolve_from(file, "child.lua") == cache.resolve(folder + "/sub", "child.lua"));
  // Each form remembers under its own keys: three of resolve_from, two of resolve.
  CHECK(cache.stats().resolved == 5);
}
