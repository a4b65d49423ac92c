// The daemon benchmark: jobs per second submitted and completed through the
// real Unix socket (a trivial script, `wait = true`), from 16 client
// connections that each keep a window of requests in flight.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "bench/benchmarks.hpp"
#include "server/config.hpp"
#include "server/daemon.hpp"

namespace luad::bench {

namespace {

namespace fs = std::filesystem;

int connect_to(const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::snprintf(a.sun_path, sizeof a.sun_path, "%s", path.c_str());
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return -1;
  return fd;
}

// Sends `jobs` spawn requests, `window` at a time; returns how many came back normal.
std::size_t client_loop(const std::string& socket, std::size_t jobs, std::size_t window) {
  int fd = connect_to(socket);
  if (fd < 0) return 0;
  const std::string request =
      R"({"jsonrpc":"2.0","id":1,"method":"spawn","params":{"source":"return 1","wait":true}})"
      "\n";
  std::string out, in;
  std::size_t ok = 0, done = 0;
  char buf[65536];
  while (done < jobs) {
    std::size_t n = std::min(window, jobs - done);
    out.clear();
    for (std::size_t i = 0; i < n; ++i) out += request;
    for (std::size_t off = 0; off < out.size();) {
      ssize_t w = ::send(fd, out.data() + off, out.size() - off, MSG_NOSIGNAL);
      if (w <= 0) return ok;
      off += static_cast<std::size_t>(w);
    }
    std::size_t got = 0;
    while (got < n) {
      auto nl = in.find('\n');
      if (nl == std::string::npos) {
        ssize_t r = ::recv(fd, buf, sizeof buf, 0);
        if (r <= 0) return ok;
        in.append(buf, static_cast<std::size_t>(r));
        continue;
      }
      if (in.find(R"("reason":"normal")") < nl) ++ok;
      in.erase(0, nl + 1);
      ++got;
    }
    done += n;
  }
  ::close(fd);
  return ok;
}

}  // namespace

void bench_daemon(const options& opts) {
  fs::path dir = fs::temp_directory_path() / ("luad_bench_daemon_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::string text = "[server]\nsocket = \"luad.sock\"\ngrace_period = 1\nworkers = " +
                     std::to_string(opts.workers) + "\n";
  server::daemon d(server::parse_config(text, (dir / "luad.toml").string()));
  d.start();
  std::thread serving([&] { d.run(); });
  std::string socket = (dir / "luad.sock").string();
  constexpr std::size_t clients = 16, window = 64;
  client_loop(socket, 2000, window);  // warm-up
  std::size_t per = opts.daemon_jobs / clients;
  std::atomic<std::size_t> ok{0};
  auto t0 = wall_clock::now();
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < clients; ++i)
    threads.emplace_back([&] { ok += client_loop(socket, per, window); });
  for (auto& t : threads) t.join();
  double secs = seconds_since(t0);
  if (ok != per * clients) note("daemon: only " + std::to_string(ok.load()) + " jobs succeeded");
  report("daemon_jobs_16conn", static_cast<double>(ok.load()) / secs, "jobs/s");
  d.request_stop();
  serving.join();
  fs::remove_all(dir);
}

}  // namespace luad::bench
