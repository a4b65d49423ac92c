// A real Prometheus (Debian's `prometheus` package) on loopback scrapes a
// daemon's metrics listener, and a luad series is read back through its
// HTTP query API.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "tests/server/daemon_support.hpp"
#include "tests/server/metrics_support.hpp"

using namespace luad_test;
using namespace luad_metrics_test;
using namespace std::chrono_literals;
using luad::test::slurp;

namespace {

// `prometheus` as a child process in `dir`, its output in dir/prometheus.log.
class prometheus_process {
 public:
  prometheus_process(const fs::path& dir, std::uint16_t port) : port_(port) {
    std::string config = "--config.file=" + (dir / "prometheus.yml").string();
    std::string storage = "--storage.tsdb.path=" + (dir / "data").string();
    std::string listen = "--web.listen-address=127.0.0.1:" + std::to_string(port);
    std::string log = (dir / "prometheus.log").string();
    pid_ = ::fork();
    if (pid_ == 0) {
      int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      ::execlp("prometheus", "prometheus", config.c_str(), storage.c_str(), listen.c_str(),
               static_cast<char*>(nullptr));
      ::_exit(127);
    }
  }
  ~prometheus_process() {
    if (!alive()) return;
    ::kill(pid_, SIGTERM);
    if (!eventually([&] { return !alive(); }, 10s)) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  prometheus_process(const prometheus_process&) = delete;
  prometheus_process& operator=(const prometheus_process&) = delete;

  /// True while it runs (reaps it once it has ended).
  bool alive() {
    if (ended_) return false;
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == 0) return true;
    ended_ = true;
    return false;
  }
  /// Ready to answer queries (GET /-/ready is 200), or ended.
  bool ready_or_ended() { return !alive() || http_get(port_, "/-/ready").status == 200; }

 private:
  pid_t pid_ = -1;
  std::uint16_t port_;
  bool ended_ = false;
};

}  // namespace

TEST_CASE(
    "prometheus: a real Prometheus scrapes the listener and its query API returns a luad "
    "series") {
  REQUIRE_MESSAGE(shell("command -v prometheus").code == 0,
                  "prometheus is not installed (scripts/dev.sh installs Debian's package)");
  running_daemon d("[metrics]\nlisten = \"127.0.0.1:0\"\n");
  client c(d.socket);
  for (int i = 0; i < 5; ++i) c.call("spawn", {{"source", "return 1"}, {"wait", true}});

  temp_dir dir("luad_prometheus");
  dir.write("prometheus.yml",
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            "scrape_configs:\n  - job_name: luad\n    scrape_interval: 200ms\n"
            "    scrape_timeout: 200ms\n    static_configs:\n"
            "      - targets: [\"127.0.0.1:" +
                std::to_string(d.d->metrics_port()) + "\"]\n");
  // Its web port was free a moment ago; should another program take it
  // first, Prometheus ends at once and the next try takes another.
  std::unique_ptr<prometheus_process> prom;
  std::uint16_t port = 0;
  for (int attempt = 0; attempt < 3 && !prom; ++attempt) {
    port = free_port();
    prom = std::make_unique<prometheus_process>(dir.path(), port);
    REQUIRE(eventually([&] { return prom->ready_or_ended(); }, 60s));
    if (!prom->alive()) prom.reset();
  }
  INFO(slurp(dir / "prometheus.log"));
  REQUIRE(prom);

  // The series as Prometheus stored it from a scrape: the 5 spawns.
  std::string query = "/api/v1/query?query=luad_processes_spawned_total%7Bjob%3D%22luad%22%7D";
  json::value answer;
  bool seen = eventually(
      [&] {
        http_answer a = http_get(port, query);
        if (a.status != 200) return false;
        answer = parse(a.body);
        json::value v = get(answer, "/data/result/0/value/1");
        return v.is_string() && v.get_string() == "5";
      },
      60s);
  INFO(answer);
  CHECK(seen);
  CHECK(get(answer, "/status") == "success");
  CHECK(text(get(answer, "/data/result/0/metric/instance")) ==
        "127.0.0.1:" + std::to_string(d.d->metrics_port()));
  // And the scrape itself was healthy: up is 1, histograms made it in.
  http_answer up = http_get(port, "/api/v1/query?query=up%7Bjob%3D%22luad%22%7D");
  CHECK(get(parse(up.body), "/data/result/0/value/1") == "1");
  http_answer buckets =
      http_get(port, "/api/v1/query?query=luad_store_commit_duration_seconds_bucket");
  CHECK(get(parse(buckets.body), "/data/result").as_array().size() == 18);
}
