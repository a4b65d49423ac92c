// The file watcher: inotify watches (one per directory) read through an Asio
// stream_descriptor, a polling fallback that diffs stat() snapshots, and the
// coalescing timer both of them feed.
//
// DESIGN. Everything lives in `state`, owned by the file_watcher and by each
// pending handler, so a handler that runs after stop() finds `stopped` set and
// returns without touching the callback. inotify watches directories, not
// files, because editors save by renaming a temporary file over the original.
// A new directory is watched before it is listed, so a file created in it is
// seen by the listing, by an event, or both. Falling back to polling (inotify
// limits) scans first and then drains the inotify queue: a change made before
// the scan is still queued, one made after it shows up in the next scan, so
// none falls in between.
#include "server/file_watch.hpp"

#include <spdlog/spdlog.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <stdexcept>
#include <string_view>
#include <system_error>
#include <unordered_map>
#include <utility>

#include "runtime/logging.hpp"

namespace luad::server {

namespace asio = boost::asio;
namespace fs = std::filesystem;
using steady = std::chrono::steady_clock;

namespace {

constexpr std::uint32_t watch_mask = IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE |
                                     IN_DELETE | IN_DELETE_SELF | IN_MOVE_SELF | IN_ATTRIB |
                                     IN_ONLYDIR;

// A burst is reported at the latest this many coalesce periods after it began.
constexpr int max_delay_factor = 10;

// What polling compares per path. Directories compare only kind and inode:
// their times change with each entry added or removed, which that entry reports.
struct stamp {
  std::int64_t mtime_ns = 0;
  std::int64_t ctime_ns = 0;
  std::int64_t size = 0;
  std::uint64_t ino = 0;
  bool dir = false;

  bool same_as(const stamp& o) const {
    if (dir != o.dir || ino != o.ino) return false;
    return dir || (mtime_ns == o.mtime_ns && ctime_ns == o.ctime_ns && size == o.size);
  }
};
using snapshot = std::map<std::string, stamp>;

std::int64_t nanos(const timespec& t) {
  return static_cast<std::int64_t>(t.tv_sec) * 1'000'000'000 + t.tv_nsec;
}

bool stat_path(const std::string& path, stamp& out) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return false;
  out = {nanos(st.st_mtim), nanos(st.st_ctim), static_cast<std::int64_t>(st.st_size),
         static_cast<std::uint64_t>(st.st_ino), S_ISDIR(st.st_mode)};
  return true;
}

// Adds `top` and everything below it to `out` (symlinked directories are not
// entered). A tree that changes during the scan may be seen in part.
void scan(const std::string& top, snapshot& out) {
  stamp s;
  if (!stat_path(top, s)) return;
  out[top] = s;
  std::error_code ec;
  const fs::recursive_directory_iterator end;
  fs::recursive_directory_iterator it(top, fs::directory_options::skip_permission_denied, ec);
  for (; !ec && it != end; it.increment(ec)) {
    std::string path = it->path().string();
    if (stat_path(path, s)) out.insert_or_assign(std::move(path), s);
  }
}

// The keys of `m` strictly below directory `top`: [top + "/", top + "0"), as
// '0' follows '/' in ASCII.
template <class Map>
std::pair<typename Map::iterator, typename Map::iterator> below(Map& m, const std::string& top) {
  std::string lo = top;
  if (!lo.ends_with('/')) lo += '/';
  std::string hi = lo;
  hi.back() = '0';
  return {m.lower_bound(lo), m.lower_bound(hi)};
}

std::string join(const std::string& dir, std::string_view name) {
  std::string path = dir;
  if (!path.ends_with('/')) path += '/';
  path += name;
  return path;
}

std::string errno_text(int err) { return std::error_code(err, std::system_category()).message(); }

}  // namespace

struct file_watcher::state : std::enable_shared_from_this<state> {
  state(asio::io_context& io, callback cb, file_watch_options o)
      : opts(o), on_change(std::move(cb)), coalesce_timer(io), poll_timer(io) {}

  void open_inotify(asio::io_context& io);
  void watch(const std::string& dir);
  void stop();

  // inotify
  void read();
  void parse(const char* data, std::size_t n);
  void handle(int wd, std::uint32_t mask, std::string_view name);
  void add_tree(const std::string& top, bool report);
  bool add_dir(const std::string& dir);
  void drop_tree(const std::string& top);
  void forget(int wd);
  void overflow();
  bool is_root(const std::string& dir) const {
    return std::find(roots.begin(), roots.end(), dir) != roots.end();
  }

  // polling
  void fall_back(const std::string& why);
  void drain();
  void start_polling();
  void poll();

  // coalescing
  void note(const std::string& path);
  void note_tree(const std::string& top);
  void arm();
  void wait_coalesce(steady::time_point when);
  void coalesced();
  void flush();

  const file_watch_options opts;
  callback on_change;
  asio::steady_timer coalesce_timer;
  asio::steady_timer poll_timer;
  std::optional<asio::posix::stream_descriptor> inotify;
  std::array<char, std::size_t{64} * 1024> buffer{};  // async reads land here
  std::unordered_map<int, std::string> dirs;          // watch descriptor -> directory
  std::map<std::string, int> wds;                     // directory -> watch descriptor
  std::vector<std::string> roots;                     // as given to watch(), absolute
  snapshot files;                                     // polling: the last scan
  std::set<std::string> pending;                      // noted, not yet reported
  bool everything = false;                            // pending: an overflow
  bool armed = false;                                 // coalesce_timer is waiting
  bool poll_armed = false;                            // poll_timer is waiting
  steady::time_point first_change, last_change;
  std::atomic<bool> polling{false};
  bool stopped = false;
};

void file_watcher::state::open_inotify(asio::io_context& io) {
  int fd = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd < 0) {
    fall_back(std::string("inotify_init1: ") + errno_text(errno));
    return;
  }
  try {
    inotify.emplace(io, fd);
  } catch (...) {
    ::close(fd);
    throw;
  }
  read();
}

void file_watcher::state::watch(const std::string& dir) {
  if (stopped) return;
  std::error_code ec;
  std::string root = fs::absolute(dir, ec).lexically_normal().string();
  if (root.size() > 1 && root.ends_with('/')) root.pop_back();
  if (ec || !fs::is_directory(root, ec)) {
    throw std::runtime_error(std::string("file_watch: not a directory: ") + dir);
  }
  if (::access(root.c_str(), R_OK | X_OK) != 0) {
    throw std::runtime_error(std::string("file_watch: cannot read ") + dir + ": " +
                             errno_text(errno));
  }
  if (is_root(root)) return;
  roots.push_back(root);
  if (polling) {
    scan(root, files);
    start_polling();
  } else {
    add_tree(root, false);
  }
}

void file_watcher::state::stop() {
  if (stopped) return;
  stopped = true;
  coalesce_timer.cancel();
  poll_timer.cancel();
  boost::system::error_code ignored;
  if (inotify) inotify->close(ignored);
  pending.clear();
  on_change = nullptr;  // flush() calls a copy, so stop() may run inside it
}

// --- inotify ---------------------------------------------------------------

void file_watcher::state::read() {
  inotify->async_read_some(
      asio::buffer(buffer),
      [self = shared_from_this()](const boost::system::error_code& ec, std::size_t n) {
        if (self->stopped) return;
        self->parse(self->buffer.data(), n);
        if (self->polling) return;  // fell back meanwhile: the descriptor is closed
        if (ec) return self->fall_back(std::string("reading inotify events: ") + ec.message());
        self->read();
      });
}

void file_watcher::state::parse(const char* data, std::size_t n) {
  std::size_t at = 0;
  while (at + sizeof(inotify_event) <= n) {
    inotify_event ev{};
    std::memcpy(&ev, data + at, sizeof ev);  // the buffer is not aligned for it
    const char* name = data + at + sizeof ev;
    at += sizeof ev + ev.len;
    if (at > n) break;  // the kernel returns whole events; never expected
    handle(ev.wd, ev.mask, std::string_view(name, ::strnlen(name, ev.len)));
  }
}

// Notes what one event changed. After a fall-back to polling it only notes:
// the directory maps are kept for events still queued, but no longer updated.
void file_watcher::state::handle(int wd, std::uint32_t mask, std::string_view name) {
  if (mask & IN_Q_OVERFLOW) return overflow();
  auto found = dirs.find(wd);
  if (found == dirs.end()) return;        // dropped already; its tree was noted then
  const std::string dir = found->second;  // a copy: the maps may change below
  if (mask & IN_IGNORED) return forget(wd);
  if (name.empty()) {  // the directory itself; its parent reports it by name
    if ((mask & (IN_DELETE_SELF | IN_MOVE_SELF)) && is_root(dir)) {
      note(dir);
      if (!polling) drop_tree(dir);
    }
    return;
  }
  std::string path = join(dir, name);
  if (!(mask & IN_ISDIR)) return note(path);
  if (mask & (IN_DELETE | IN_MOVED_FROM)) {  // the watches would name the old path
    note(path);
    if (!polling) drop_tree(path);
  }
  if (mask & (IN_CREATE | IN_MOVED_TO)) {
    if (!polling) return add_tree(path, true);
    note(path);
    note_tree(path);  // in the snapshot already if made before the fall-back
  }
}

// Watches `top` and every directory below it, each before it is listed. When
// `report`, notes `top` and everything below it.
void file_watcher::state::add_tree(const std::string& top, bool report) {
  if (report) note(top);
  if (add_dir(top)) {
    std::error_code ec;
    const fs::recursive_directory_iterator end;
    fs::recursive_directory_iterator it(top, fs::directory_options::skip_permission_denied, ec);
    for (; !ec && it != end; it.increment(ec)) {
      std::string path = it->path().string();
      if (report) note(path);
      std::error_code type_ec;
      if (!it->is_symlink(type_ec) && it->is_directory(type_ec) && !add_dir(path)) {
        if (polling) break;
        it.disable_recursion_pending();  // gone or unreadable: skip it
      }
    }
  }
  if (polling && report) note_tree(top);  // fell back: report it from the snapshot
}

// Adds an inotify watch on `dir`; false if it is not watched: gone, not
// readable, or over a limit (then this has fallen back to polling).
bool file_watcher::state::add_dir(const std::string& dir) {
  if (polling) return false;
  if (opts.max_watches && wds.size() >= opts.max_watches && !wds.contains(dir)) {
    fall_back(std::string("more than ") + std::to_string(opts.max_watches) + " directories");
    return false;
  }
  int wd = ::inotify_add_watch(inotify->native_handle(), dir.c_str(), watch_mask);
  if (wd < 0) {
    int err = errno;
    if (err == ENOSPC || err == ENOMEM)
      fall_back(std::string("inotify_add_watch: ") + errno_text(err));
    return false;
  }
  auto [at, fresh] = dirs.try_emplace(wd, dir);
  if (!fresh && at->second != dir) {  // the same directory under a new name
    wds.erase(at->second);
    at->second = dir;
  }
  wds[dir] = wd;
  return true;
}

void file_watcher::state::drop_tree(const std::string& top) {
  auto drop = [this](std::map<std::string, int>::iterator at) {
    ::inotify_rm_watch(inotify->native_handle(), at->second);  // EINVAL if gone already
    dirs.erase(at->second);
    return wds.erase(at);
  };
  if (auto at = wds.find(top); at != wds.end()) drop(at);
  auto [lo, hi] = below(wds, top);
  while (lo != hi) lo = drop(lo);
}

void file_watcher::state::forget(int wd) {
  auto at = dirs.find(wd);
  if (at == dirs.end()) return;
  if (auto p = wds.find(at->second); p != wds.end() && p->second == wd) wds.erase(p);
  dirs.erase(at);
}

void file_watcher::state::overflow() {
  everything = true;
  arm();
  // Directories made while events were lost need watches too.
  for (std::size_t i = 0; i < roots.size() && !polling; ++i) add_tree(roots[i], false);
}

// --- polling ---------------------------------------------------------------

void file_watcher::state::fall_back(const std::string& why) {
  if (polling) return;
  runtime::logger().warn("file_watch: {}; polling every {} ms instead", why,
                         opts.poll_interval.count());
  polling = true;  // from here on, handle() only notes
  files.clear();
  for (const std::string& root : roots) scan(root, files);
  if (inotify) {
    drain();
    boost::system::error_code ignored;
    inotify->close(ignored);
  }
  if (!roots.empty()) start_polling();
}

// Notes the events still queued (see DESIGN). The async read's buffer may hold
// events not parsed yet, so this reads into its own.
void file_watcher::state::drain() {
  std::vector<char> chunk(buffer.size());
  for (;;) {
    ssize_t n = ::read(inotify->native_handle(), chunk.data(), chunk.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // EAGAIN: empty
    parse(chunk.data(), static_cast<std::size_t>(n));
  }
}

void file_watcher::state::start_polling() {
  if (poll_armed || stopped) return;
  poll_armed = true;
  poll_timer.expires_after(opts.poll_interval);
  poll_timer.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
    if (!ec && !self->stopped) self->poll();
  });
}

// Rescans every tree and notes what differs from the last scan.
void file_watcher::state::poll() {
  poll_armed = false;
  snapshot now;
  for (const std::string& root : roots) scan(root, now);
  auto a = files.begin();
  auto b = now.begin();
  while (a != files.end() || b != now.end()) {
    if (b == now.end() || (a != files.end() && a->first < b->first)) {
      note((a++)->first);  // gone
    } else if (a == files.end() || b->first < a->first) {
      note((b++)->first);  // new
    } else {
      if (!a->second.same_as(b->second)) note(a->first);
      ++a;
      ++b;
    }
  }
  files = std::move(now);
  start_polling();
}

// --- coalescing ------------------------------------------------------------

void file_watcher::state::note(const std::string& path) {
  pending.insert(path);
  arm();
}

void file_watcher::state::note_tree(const std::string& top) {
  if (files.contains(top)) note(top);
  auto [lo, hi] = below(files, top);
  for (; lo != hi; ++lo) note(lo->first);
}

void file_watcher::state::arm() {
  last_change = steady::now();
  if (armed) return;
  armed = true;
  first_change = last_change;
  wait_coalesce(first_change + opts.coalesce);
}

void file_watcher::state::wait_coalesce(steady::time_point when) {
  coalesce_timer.expires_at(when);
  coalesce_timer.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
    if (!ec && !self->stopped) self->coalesced();
  });
}

// Reports once the burst has been quiet for `coalesce`, or has lasted too long.
void file_watcher::state::coalesced() {
  auto quiet = last_change + opts.coalesce;
  auto latest = first_change + opts.coalesce * max_delay_factor;
  auto now = steady::now();
  if (now < quiet && now < latest) return wait_coalesce(std::min(quiet, latest));
  flush();
}

void file_watcher::state::flush() {
  armed = false;
  std::vector<std::string> paths;
  paths.reserve(pending.size());
  while (!pending.empty()) paths.push_back(std::move(pending.extract(pending.begin()).value()));
  bool all = std::exchange(everything, false);
  callback cb = on_change;  // a copy: the callback may stop or destroy the watcher
  if (cb) cb(std::move(paths), all);
}

// --- file_watcher ----------------------------------------------------------

file_watcher::file_watcher(asio::io_context& io, callback on_change, file_watch_options opts)
    : state_(std::make_shared<state>(io, std::move(on_change), opts)) {
  if (opts.force_polling) {
    state_->polling = true;
  } else {
    state_->open_inotify(io);
  }
}

file_watcher::~file_watcher() {
  try {
    state_->stop();
  } catch (...) {
    // cancel() throws only if the reactor fails; `stopped` is set by then, so
    // no callback runs either way
  }
}

void file_watcher::watch(const std::string& dir) { state_->watch(dir); }

bool file_watcher::polling() const { return state_->polling; }

void file_watcher::stop() { state_->stop(); }

}  // namespace luad::server
