// The bytecode cache: compile once per content, stat at most once per recheck,
// invalidation, LRU by bytes, capacity 0, compile errors, dependencies.
#include "runtime/code.hpp"

#include <doctest/doctest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
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
using luad::test::shared_engine;
using namespace std::chrono_literals;

// A fresh folder under /tmp, removed with everything in it.
class temp_tree {
 public:
  temp_tree() {
    static std::atomic<int> serial{0};
    std::string leaf = std::string("luad-code-")
                           .append(std::to_string(::getpid()))
                           .append("-")
                           .append(std::to_string(serial++));
    root_ = fs::temp_directory_path() / leaf;
    fs::remove_all(root_);
    fs::create_directories(root_);
    root_ = fs::canonical(root_);
  }
  ~temp_tree() {
    std::error_code ec;
    fs::remove_all(root_, ec);
  }
  temp_tree(const temp_tree&) = delete;
  temp_tree& operator=(const temp_tree&) = delete;

  const fs::path& root() const { return root_; }
  std::string path(const std::string& rel) const { return (root_ / rel).string(); }
  /// Writes `text` and moves the mtime `later` past the previous one, so that
  /// a change is visible even on a file system with coarse timestamps.
  void write(const std::string& rel, std::string_view text, std::chrono::seconds later = 0s) const {
    fs::path p = root_ / rel;
    fs::create_directories(p.parent_path());
    auto before = fs::exists(p) ? fs::last_write_time(p) : fs::file_time_type::clock::now();
    std::ofstream(p, std::ios::binary | std::ios::trunc) << text;
    if (later.count()) fs::last_write_time(p, before + later);
  }

 private:
  fs::path root_;
};

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
  luad::runtime::pid id = shared_engine().scheduler().spawn(code, std::move(opts));
  REQUIRE(static_cast<bool>(id));
  return id;
}

exit_info wait_exit(std::future<exit_info>& fut) {
  REQUIRE(fut.wait_for(std::chrono::seconds(30)) == std::future_status::ready);
  return fut.get();
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
  temp_tree t;
  t.write("s.lua", "return 1");
  for (auto recheck : {1000ms, 0ms}) {
    CAPTURE(recheck.count());
    code_cache cache(with(std::size_t{1} << 20, recheck));
    chunk_ptr first = cache.get(t.path("s.lua"));
    REQUIRE_FALSE(first->compile_error);
    for (int i = 1; i < 100; ++i) CHECK(cache.get(t.path("s.lua")) == first);
    auto s = cache.stats();
    CHECK(s.compiles == 1);
    CHECK(s.hits == 99);
    CHECK(s.misses == 1);
    CHECK(s.compile_errors == 0);
    CHECK(s.entries == 1);
    CHECK(s.bytes >= first->bytecode.size());
    CHECK(cache.paths() == std::vector<std::string>{t.path("s.lua")});
  }
}

TEST_CASE("code cache: changed content is recompiled; running processes keep their code") {
  temp_tree t;
  t.write("job.lua", "require('time').sleep(0.2) return 'v1'");
  code_cache cache(with(std::size_t{1} << 20, 0ms));
  chunk_ptr v1 = cache.get(t.path("job.lua"));
  std::future<exit_info> old_run;
  auto old_id = spawn_chunk(v1, old_run);
  REQUIRE(eventually([&] { return waiting(old_id); }));

  t.write("job.lua", "require('time').sleep(0.01) return 'v2'", 5s);
  chunk_ptr v2 = cache.get(t.path("job.lua"));
  CHECK(v2 != v1);
  CHECK(cache.stats().compiles == 2);
  std::future<exit_info> new_run;
  spawn_chunk(v2, new_run);
  auto e = wait_exit(new_run);
  REQUIRE_MESSAGE(e.reason == exit_reason::normal, e.err.message);
  CHECK(e.results.at(0) == value("v2"));
  e = wait_exit(old_run);
  REQUIRE_MESSAGE(e.reason == exit_reason::normal, e.err.message);
  CHECK(e.results.at(0) == value("v1"));
  CHECK(cache.get(t.path("job.lua")) == v2);
}

TEST_CASE("code cache: a changed package reaches new processes; running ones keep theirs") {
  temp_tree t;
  t.write("pkg.lua", "return 'v1'");
  t.write("main.lua", R"(
    local first = require("pkg")
    require("time").sleep(0.2)
    return first, require("pkg"))");
  auto& cache = shared_engine().scheduler().code();
  std::future<exit_info> old_run;
  auto old_id = spawn_chunk(cache.get(t.path("main.lua")), old_run, t.root().string());
  REQUIRE(eventually([&] { return waiting(old_id); }));

  t.write("pkg.lua", "return 'v2'", 5s);
  cache.invalidate(t.path("pkg.lua"));  // what the file watcher does
  std::future<exit_info> new_run;
  spawn_chunk(cache.get(t.path("main.lua")), new_run, t.root().string());
  auto e = wait_exit(new_run);
  REQUIRE_MESSAGE(e.reason == exit_reason::normal, e.err.message);
  CHECK(e.results == std::vector<value>{value("v2"), value("v2")});
  e = wait_exit(old_run);
  REQUIRE_MESSAGE(e.reason == exit_reason::normal, e.err.message);
  CHECK(e.results == std::vector<value>{value("v1"), value("v1")});
}

TEST_CASE("code cache: a pinned process runs the pinned packages and scripts; others the files") {
  temp_tree t;
  t.write("pkg.lua", "return 'old'");
  t.write("child.lua", "require('process').send((...), 'R', 'old child')");
  t.write("main.lua", R"(
    local process = require("process")
    process.spawn("child.lua", process.self())
    return require("pkg"), process.receive("R").payload)");
  auto& cache = shared_engine().scheduler().code();
  auto pin = std::make_shared<luad::runtime::code_pin>();
  pin->chunks[t.path("pkg.lua")] = cache.get(t.path("pkg.lua"));
  pin->chunks[t.path("child.lua")] = cache.get(t.path("child.lua"));
  CHECK(cache.cached(t.path("pkg.lua")) == pin->chunks[t.path("pkg.lua")]);
  CHECK(cache.cached(t.path("nothing.lua")) == nullptr);

  t.write("pkg.lua", "return 'new'", 5s);
  t.write("child.lua", "require('process').send((...), 'R', 'new child')", 5s);
  cache.invalidate(t.path("pkg.lua"));
  cache.invalidate(t.path("child.lua"));
  std::future<exit_info> pinned, current;
  spawn_chunk(cache.get(t.path("main.lua")), pinned, t.root().string(), pin);
  spawn_chunk(cache.get(t.path("main.lua")), current, t.root().string());
  auto e = wait_exit(pinned);
  REQUIRE_MESSAGE(e.reason == exit_reason::normal, e.err.message);
  CHECK(e.results == std::vector<value>{value("old"), value("old child")});
  e = wait_exit(current);
  REQUIRE_MESSAGE(e.reason == exit_reason::normal, e.err.message);
  CHECK(e.results == std::vector<value>{value("new"), value("new child")});
}

TEST_CASE("code cache: the same content with a new mtime is not recompiled") {
  temp_tree t;
  t.write("s.lua", "return 'same'");
  code_cache cache(with(std::size_t{1} << 20, 0ms));
  chunk_ptr first = cache.get(t.path("s.lua"));
  fs::last_write_time(t.path("s.lua"), fs::last_write_time(t.path("s.lua")) + 10s);
  CHECK(cache.get(t.path("s.lua")) == first);
  t.write("s.lua", "return 'same'", 20s);  // rewritten, same bytes
  CHECK(cache.get(t.path("s.lua")) == first);
  cache.invalidate(t.path("s.lua"));
  CHECK(cache.get(t.path("s.lua")) == first);
  auto s = cache.stats();
  CHECK(s.compiles == 1);
  CHECK(s.hits == 3);
}

TEST_CASE("code cache: a path is re-stated at most once per recheck, or after invalidate") {
  temp_tree t;
  t.write("a.lua", "return 'a1'");
  t.write("b.lua", "return 'b1'");
  code_cache cache(with(std::size_t{1} << 20, std::chrono::hours(1)));
  chunk_ptr a1 = cache.get(t.path("a.lua"));
  chunk_ptr b1 = cache.get(t.path("b.lua"));
  t.write("a.lua", "return 'a2'", 5s);
  t.write("b.lua", "return 'b2'", 5s);
  CHECK(cache.get(t.path("a.lua")) == a1);  // not re-checked yet
  cache.invalidate(t.path("a.lua"));
  chunk_ptr a2 = cache.get(t.path("a.lua"));
  CHECK(a2 != a1);
  CHECK(cache.get(t.path("b.lua")) == b1);
  cache.invalidate_all();
  CHECK(cache.get(t.path("b.lua")) != b1);
  CHECK(cache.get(t.path("a.lua")) == a2);  // unchanged since: no compile
  CHECK(cache.stats().compiles == 4);
}

TEST_CASE("code cache: least recently used chunks are evicted past capacity_bytes") {
  temp_tree t;
  for (const char* name : {"a", "b", "c"}) {
    t.write(std::string(name).append(".lua"), std::string("return '").append(name).append("'"));
  }
  std::size_t one = 0;
  {
    code_cache probe;
    probe.get(t.path("a.lua"));
    one = probe.stats().bytes;
  }
  REQUIRE(one > 0);
  code_cache cache(with(one * 2 + one / 2, 0ms));  // room for two
  chunk_ptr a = cache.get(t.path("a.lua"));
  chunk_ptr b = cache.get(t.path("b.lua"));
  CHECK(cache.get(t.path("a.lua")) == a);  // a is now the most recent
  cache.get(t.path("c.lua"));              // evicts b
  auto s = cache.stats();
  CHECK(s.evictions == 1);
  CHECK(s.entries == 2);
  CHECK(s.bytes <= one * 2 + one / 2);
  CHECK(cache.paths() == std::vector<std::string>{t.path("a.lua"), t.path("c.lua")});
  CHECK(cache.get(t.path("a.lua")) == a);
  chunk_ptr b2 = cache.get(t.path("b.lua"));  // compiled again
  CHECK(b2 != b);
  CHECK_FALSE(b->bytecode.empty());  // an evicted chunk stays valid for its holders
  CHECK(cache.stats().compiles == 4);

  cache.configure(with(0, 0ms));  // shrinking evicts at once
  CHECK(cache.stats().entries == 0);
  CHECK(cache.stats().bytes == 0);
}

TEST_CASE("code cache: capacity 0 compiles on every get") {
  temp_tree t;
  t.write("s.lua", "return 1");
  code_cache cache(with(0, 1000ms));
  chunk_ptr first = cache.get(t.path("s.lua"));
  for (int i = 0; i < 4; ++i) CHECK(cache.get(t.path("s.lua")) != first);
  auto s = cache.stats();
  CHECK(s.compiles == 5);
  CHECK(s.misses == 5);
  CHECK(s.hits == 0);
  CHECK(s.entries == 0);
  CHECK(s.bytes == 0);
}

TEST_CASE("code cache: compile errors are cached per content and reported") {
  temp_tree t;
  t.write("bad.lua", "local = 1");
  code_cache cache(with(std::size_t{1} << 20, 0ms));
  chunk_ptr bad = cache.get(t.path("bad.lua"));
  REQUIRE(bad->compile_error);
  CHECK(bad->compile_error->kind == error_kind::syntax);
  CHECK(cache.get(t.path("bad.lua")) == bad);
  auto err = cache.last_error(t.path("bad.lua"));
  REQUIRE(err);
  CHECK(err->message.find(t.path("bad.lua").append(":1:")) != std::string::npos);
  auto s = cache.stats();
  CHECK(s.compiles == 1);
  CHECK(s.compile_errors == 1);
  CHECK(s.hits == 1);

  t.write("bad.lua", "local x = 1 return x", 5s);
  CHECK_FALSE(cache.get(t.path("bad.lua"))->compile_error);
  CHECK_FALSE(cache.last_error(t.path("bad.lua")));
  CHECK(cache.stats().compile_errors == 1);

  chunk_ptr missing = cache.get(t.path("missing.lua"));
  REQUIRE(missing->compile_error);
  CHECK(missing->compile_error->kind == error_kind::not_found);
  CHECK(cache.stats().entries == 1);  // a missing file is not cached
  fs::create_directory(t.path("dir.lua"));
  chunk_ptr dir = cache.get(t.path("dir.lua"));
  REQUIRE(dir->compile_error);
  CHECK(dir->compile_error->kind == error_kind::invalid);
}

TEST_CASE("code cache: a binary chunk on disk is refused") {
  temp_tree t;
  chunk_ptr text = luad::runtime::compile("return 1", "x.lua");
  t.write("bin.lua", text->bytecode);
  code_cache cache;
  chunk_ptr c = cache.get(t.path("bin.lua"));
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
  temp_tree t;
  for (int i = 0; i < 4; ++i) t.write(std::to_string(i).append(".lua"), "return 0");
  code_cache cache(with(4096, 0ms));
  std::atomic<bool> stop{false};
  std::atomic<int> bad{0};
  std::vector<std::thread> threads;
  for (int w = 0; w < 4; ++w) {
    threads.emplace_back([&, w] {
      for (int i = 0; i < 500; ++i) {
        chunk_ptr c = cache.get(t.path(std::to_string((w + i) % 4).append(".lua")));
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
