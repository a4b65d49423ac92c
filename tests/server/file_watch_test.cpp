// File watcher: edits, renames, deletions and new directories, through inotify
// and through polling; bursts coalesced; the fall-back; no callback after destruction.
#include "server/file_watch.hpp"

#include "tests/support.hpp"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <unistd.h>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

namespace asio = boost::asio;
namespace fs = std::filesystem;
using luad::server::file_watch_options;
using luad::server::file_watcher;
using luad::test::eventually;
using std::chrono::milliseconds;

// A fresh folder (tests/support's temp_dir) with paths as strings.
struct temp_tree {
  luad::test::temp_dir dir{"luad-watch"};
  std::string root = dir.path().string();

  std::string at(const std::string& relative) const { return root + "/" + relative; }
};

void write_file(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
  out.close();
  REQUIRE_MESSAGE(out, "cannot write " << path);
}

// Collects what a watcher reports; the callback runs on the io thread.
class recorder {
 public:
  file_watcher::callback callback() {
    return [this](std::vector<std::string> paths, bool everything) {
      std::lock_guard lock(mu_);
      ++calls_;
      if (std::adjacent_find(paths.begin(), paths.end(), std::greater_equal<>()) != paths.end()) {
        ordered_ = false;  // not sorted, or a duplicate
      }
      everything_ = everything_ || everything;
      seen_.insert(paths.begin(), paths.end());
    };
  }
  bool saw(const std::string& path) {
    std::lock_guard lock(mu_);
    return everything_ || seen_.contains(path);
  }
  // Waits (up to 10 s) until `path` has been reported.
  bool wait_for(const std::string& path) {
    return eventually([&] { return saw(path); });
  }
  int calls() {
    std::lock_guard lock(mu_);
    return calls_;
  }
  bool ordered() {
    std::lock_guard lock(mu_);
    return ordered_;
  }
  void forget() {
    std::lock_guard lock(mu_);
    seen_.clear();
    everything_ = false;
  }

 private:
  std::mutex mu_;
  std::set<std::string> seen_;
  int calls_ = 0;
  bool everything_ = false;
  bool ordered_ = true;
};

// Runs `io` on its own thread until destroyed.
class io_thread {
 public:
  explicit io_thread(asio::io_context& io)
      : io_(io), guard_(asio::make_work_guard(io)), thread_([&io] { io.run(); }) {}
  ~io_thread() {
    guard_.reset();
    io_.stop();
    thread_.join();
  }
  io_thread(const io_thread&) = delete;
  io_thread& operator=(const io_thread&) = delete;

  // Runs `f` on the io thread and waits for it.
  void run(const std::function<void()>& f) {
    std::promise<void> done;
    asio::post(io_, [&] {
      f();
      done.set_value();
    });
    done.get_future().wait();
  }

 private:
  asio::io_context& io_;
  asio::executor_work_guard<asio::io_context::executor_type> guard_;
  std::thread thread_;
};

std::string numbered(int i) { return std::string("f") + std::to_string(i) + ".lua"; }

file_watch_options quick(bool polling) {
  file_watch_options o;
  o.coalesce = milliseconds(20);
  o.poll_interval = milliseconds(20);
  o.force_polling = polling;
  return o;
}

// One watcher on a fresh tree, run on its own io thread, for each mode. `before`
// fills the tree before watching; `check` makes changes and checks reports.
void in_both_modes(const std::function<void(const temp_tree&)>& before,
                   const std::function<void(const temp_tree&, recorder&)>& check) {
  for (bool polling : {false, true}) {
    CAPTURE(polling);
    temp_tree t;
    before(t);
    asio::io_context io;
    recorder rec;
    file_watcher w(io, rec.callback(), quick(polling));
    w.watch(t.root);
    CHECK(w.polling() == polling);
    io_thread running(io);
    check(t, rec);
    CHECK(rec.ordered());
  }
}

}  // namespace

TEST_CASE("file_watch: a modified file is reported, an untouched one is not") {
  in_both_modes(
      [](const temp_tree& t) {
        write_file(t.at("a.lua"), "return 1");
        write_file(t.at("b.lua"), "return 'b'");
      },
      [](const temp_tree& t, recorder& rec) {
        write_file(t.at("a.lua"), "return 1 + 1");
        CHECK(rec.wait_for(t.at("a.lua")));
        CHECK_FALSE(rec.saw(t.at("b.lua")));
      });
}

TEST_CASE("file_watch: a file renamed over another is reported by its final name") {
  in_both_modes([](const temp_tree& t) { write_file(t.at("a.lua"), "return 1"); },
                [](const temp_tree& t, recorder& rec) {
                  write_file(t.at("a.lua.tmp"), "return 'saved'");
                  fs::rename(t.at("a.lua.tmp"), t.at("a.lua"));
                  CHECK(rec.wait_for(t.at("a.lua")));
                });
}

TEST_CASE("file_watch: a deleted file is reported") {
  in_both_modes([](const temp_tree& t) { write_file(t.at("gone.lua"), "return 1"); },
                [](const temp_tree& t, recorder& rec) {
                  fs::remove(t.at("gone.lua"));
                  CHECK(rec.wait_for(t.at("gone.lua")));
                });
}

TEST_CASE("file_watch: a file replaced by a directory is reported, then files made in it") {
  in_both_modes([](const temp_tree& t) { write_file(t.at("lib"), "return 1"); },
                [](const temp_tree& t, recorder& rec) {
                  fs::remove(t.at("lib"));
                  fs::create_directory(t.at("lib"));
                  CHECK(rec.wait_for(t.at("lib")));
                  write_file(t.at("lib/init.lua"), "return {}");
                  CHECK(rec.wait_for(t.at("lib/init.lua")));
                });
}

TEST_CASE("file_watch: new and renamed subdirectories are watched") {
  in_both_modes([](const temp_tree&) {},
                [](const temp_tree& t, recorder& rec) {
                  // Made at once, before the watcher can have seen the directories.
                  fs::create_directories(t.at("sub/deep"));
                  write_file(t.at("sub/deep/a.lua"), "return 1");
                  CHECK(rec.wait_for(t.at("sub/deep/a.lua")));
                  write_file(t.at("sub/b.lua"), "return 2");
                  write_file(t.at("sub/deep/c.lua"), "return 3");
                  CHECK(rec.wait_for(t.at("sub/b.lua")));
                  CHECK(rec.wait_for(t.at("sub/deep/c.lua")));
                  // Renamed: its files are reported, and watched, under the new name.
                  fs::rename(t.at("sub"), t.at("moved"));
                  CHECK(rec.wait_for(t.at("sub")));
                  CHECK(rec.wait_for(t.at("moved/deep/a.lua")));
                  rec.forget();
                  write_file(t.at("moved/deep/d.lua"), "return 4");
                  CHECK(rec.wait_for(t.at("moved/deep/d.lua")));
                  CHECK_FALSE(rec.saw(t.at("sub/deep/d.lua")));
                  // Moved in from outside the tree.
                  temp_tree outside;
                  write_file(outside.at("e.lua"), "return 5");
                  fs::rename(outside.root, t.at("in"));
                  CHECK(rec.wait_for(t.at("in/e.lua")));
                });
}

TEST_CASE("file_watch: 10,000 writes to 100 files come in a few callbacks") {
  temp_tree t;
  asio::io_context io;
  recorder rec;
  file_watcher w(io, rec.callback());  // the default 50 ms coalescing
  w.watch(t.root);
  REQUIRE_FALSE(w.polling());
  io_thread running(io);
  constexpr int files = 100, writes = 10'000;
  auto started = std::chrono::steady_clock::now();
  for (int i = 0; i < writes; ++i) {
    // Same-size bodies without O_TRUNC: on ext4 a truncating rewrite costs ~100 µs.
    std::string path = t.at(numbered(i % files));
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    REQUIRE(fd >= 0);
    std::string body = std::string("return ") + std::to_string(writes + i);
    bool written = ::write(fd, body.data(), body.size()) == static_cast<ssize_t>(body.size());
    ::close(fd);
    REQUIRE(written);
  }
  auto took = std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - started);
  CHECK(eventually([&] {
    for (int i = 0; i < files; ++i) {
      if (!rec.saw(t.at(numbered(i)))) return false;
    }
    return true;
  }));
  INFO(writes << " writes took " << took.count() << " ms");
  CHECK(rec.calls() < 20);
  CHECK(rec.ordered());
}

TEST_CASE("file_watch: watch() of a missing directory, or of a file, throws naming it") {
  temp_tree t;
  write_file(t.at("file.lua"), "return 1");
  for (bool polling : {false, true}) {
    CAPTURE(polling);
    asio::io_context io;
    file_watcher w(
        io, [](const std::vector<std::string>&, bool) {}, quick(polling));
    for (const std::string& bad : {t.at("missing"), t.at("file.lua")}) {
      try {
        w.watch(bad);
        FAIL("watch() did not throw for " << bad);
      } catch (const std::runtime_error& e) {
        CHECK(std::string(e.what()).find(bad) != std::string::npos);
      }
    }
  }
}

TEST_CASE("file_watch: no callback runs once the watcher is destroyed") {
  // `slow` would report 200 ms after the change; `fast` shows that the change
  // was seen and that the io thread kept running afterwards.
  for (bool polling : {false, true}) {
    CAPTURE(polling);
    temp_tree t;
    asio::io_context io;
    recorder slow_rec, fast_rec;
    file_watch_options slow_opts = quick(polling);
    slow_opts.coalesce = milliseconds(200);
    auto slow = std::make_unique<file_watcher>(io, slow_rec.callback(), slow_opts);
    file_watcher fast(io, fast_rec.callback(), quick(polling));
    slow->watch(t.root);
    fast.watch(t.root);
    io_thread running(io);
    write_file(t.at("a.lua"), "return 1");
    REQUIRE(fast_rec.wait_for(t.at("a.lua")));
    int calls_before = -1;
    running.run([&] {
      slow.reset();
      calls_before = slow_rec.calls();
    });
    auto destroyed = std::chrono::steady_clock::now();
    write_file(t.at("b.lua"), "return 2");
    CHECK(fast_rec.wait_for(t.at("b.lua")));
    // Long enough for `slow` to have reported both changes, were it alive.
    std::this_thread::sleep_until(destroyed + milliseconds(350));
    CHECK(slow_rec.calls() == calls_before);
  }
}

TEST_CASE("file_watch: past max_watches directories it falls back to polling") {
  file_watch_options opts = quick(false);
  opts.max_watches = 2;
  asio::io_context io;
  SUBCASE("at watch()") {
    temp_tree t;
    fs::create_directories(t.at("d1/d2"));
    recorder rec;
    file_watcher w(io, rec.callback(), opts);
    w.watch(t.root);
    CHECK(w.polling());
    io_thread running(io);
    write_file(t.at("d1/d2/a.lua"), "return 1");
    CHECK(rec.wait_for(t.at("d1/d2/a.lua")));
  }
  SUBCASE("while running: nothing is lost on the way") {
    temp_tree t;
    write_file(t.at("a.lua"), "return 1");
    recorder rec;
    file_watcher w(io, rec.callback(), opts);
    w.watch(t.root);
    io_thread running(io);
    fs::create_directory(t.at("one"));  // the second watch
    write_file(t.at("one/b.lua"), "return 2");
    CHECK(rec.wait_for(t.at("one/b.lua")));
    CHECK_FALSE(w.polling());
    fs::create_directories(t.at("two/deep"));  // the third
    write_file(t.at("two/deep/c.lua"), "return 3");
    CHECK(rec.wait_for(t.at("two/deep/c.lua")));
    CHECK(eventually([&] { return w.polling(); }));
    rec.forget();
    write_file(t.at("one/b.lua"), "return 'two'");
    write_file(t.at("a.lua"), "return 'one'");
    CHECK(rec.wait_for(t.at("one/b.lua")));
    CHECK(rec.wait_for(t.at("a.lua")));
  }
}
