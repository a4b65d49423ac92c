// The daemon, composed: its parts (events, workflows, code reload, the
// methods' services), the socket and its accept loop, signals, and the start
// and stop sequences. What each part does lives in its own file.
//
// DESIGN. Everything that touches a socket runs on one Asio thread (`io`):
// connections, the acceptor, signals, the file watcher, and every
// continuation. Workers report exits and log lines on their own threads;
// events.cpp records them under its lock and posts what must be sent to `io`.
// io.run() returns once the acceptor, signals, timers and every connection
// are gone: that is how begin_stop() ends the serving.
#include "server/daemon.hpp"

#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>
#include <boost/asio.hpp>

#include <filesystem>
#include <iostream>
#include <optional>
#include <thread>
#include <vector>

#include "runtime/bounded_lib.hpp"
#include "runtime/code.hpp"
#include "runtime/logging.hpp"
#include "server/cluster.hpp"
#include "server/code_reload.hpp"
#include "server/compile_pool.hpp"
#include "server/connection.hpp"
#include "server/durable_runs.hpp"
#include "server/events.hpp"
#include "server/exit_log.hpp"
#include "server/methods.hpp"
#include "server/metrics.hpp"
#include "server/metrics_listener.hpp"
#include "server/scheduled_runs.hpp"
#include "server/stats.hpp"
#include "server/workflows.hpp"

namespace luad::server {

namespace asio = boost::asio;
namespace fs = std::filesystem;
using local = asio::local::stream_protocol;

struct daemon::impl {
  config cfg;
  std::unique_ptr<engine> eng;  // made in start(): the parts below use it after that
  asio::io_context io;
  local::acceptor acceptor{io};
  asio::signal_set signals{io, SIGTERM, SIGINT};
  asio::signal_set hangup{io, SIGHUP};  // reload
  bool stopping = false;                // io thread only
  std::chrono::steady_clock::time_point started_at = std::chrono::steady_clock::now();
  std::vector<std::weak_ptr<connection>> connections;  // io thread only
  events ev{io};
  exit_log exits{io};  // a line for each process that fails
  std::unique_ptr<workflows> wf;
  std::unique_ptr<code_reload> code;
  std::unique_ptr<durable_runs> runs;         // null without a data directory
  std::unique_ptr<scheduled_runs> schedules;  // (the same)
  std::unique_ptr<cluster_member> cluster;    // on PostgreSQL only
  std::unique_ptr<services> svc;
  std::unique_ptr<compile_pool> compiler;     // after io: stopped and joined before it goes
  std::unique_ptr<metrics_listener> metrics;  // null unless [metrics] listen is set

  explicit impl(config c) : cfg(std::move(c)) {}
  void make_parts();
  void check_socket();
  void listen();
  void listen_metrics();
  void accept();
  std::string admit(const peer& p);
  static bool privileged(const peer& p);
  void watch_signals();
  void watch_hangup();
  void begin_stop();
  std::size_t open_connections();
};

void daemon::impl::make_parts() {
  wf = std::make_unique<workflows>(cfg, *eng, ev, io);
  code = std::make_unique<code_reload>(cfg, *eng, *wf, ev, io);
  wf->set_code_reload(*code);
  svc = std::make_unique<services>(
      services{cfg, *eng, ev, *wf, *code,
               [this] {
                 return stats_document(
                     *eng, {started_at, code->counters(), open_connections(), wf->restarts(),
                            cluster ? cluster->counters() : boost::json::object{}});
               },
               [this] { asio::post(io, [this] { begin_stop(); }); }});
  compiler = std::make_unique<compile_pool>(io);
  svc->compiler = compiler.get();
  if (cfg.storage.has_database()) {
    runs = std::make_unique<durable_runs>(cfg, *eng, ev, io);
    schedules = std::make_unique<scheduled_runs>(*runs, io);
    wf->set_durable(*runs, *schedules);
    svc->runs = runs.get();
    if (cfg.storage.backend == "postgres") {
      cluster = std::make_unique<cluster_member>(cfg, *eng, *runs, io);
      svc->cluster = cluster.get();
    }
  }
}

// Throws when another daemon serves on the socket; removes a stale one.
void daemon::impl::check_socket() {
  const std::string& path = cfg.server.socket;
  fs::create_directories(fs::path(path).parent_path());
  if (fs::exists(path)) {
    // A live daemon answers a connect; a stale file (after a crash) does not.
    local::socket probe(io);
    boost::system::error_code ec;
    probe.connect(local::endpoint(path), ec);
    if (!ec) throw std::runtime_error("another luad is already serving on " + path);
    fs::remove(path);
  }
}

void daemon::impl::listen() {
  const std::string& path = cfg.server.socket;
  acceptor.open(local());
  acceptor.bind(local::endpoint(path));
  ::chmod(path.c_str(), static_cast<mode_t>(cfg.server.socket_mode));
  acceptor.listen();
}

// Throws (the daemon does not start) when the address cannot be bound.
void daemon::impl::listen_metrics() {
  if (cfg.metrics.listen.empty()) return;
  metrics = std::make_unique<metrics_listener>(
      io, [this] { return prometheus_text(svc->stats()); }, metrics_listener::limits{});
  metrics->start(cfg.metrics.address, cfg.metrics.port);
}

void daemon::impl::accept() {
  acceptor.async_accept([this](boost::system::error_code ec, local::socket s) {
    if (ec) return;  // closed: stopping
    std::optional<peer> p = connection::credentials(s);
    std::string refused = p ? admit(*p) : std::string("peer credentials unreadable");
    if (!refused.empty()) {
      runtime::logger().warn("refused a connection: {}", refused);
      std::string line = proto::frame(proto::error_reply(
          nullptr, runtime::fail(runtime::error_kind::limit, std::move(refused))));
      boost::system::error_code ignored;
      s.non_blocking(true, ignored);  // one line into an empty socket buffer: never blocks
      asio::write(s, asio::buffer(line), ignored);
    } else {
      auto c = std::make_shared<connection>(*svc, std::move(s), *p);
      connections.push_back(c);
      c->start();
    }
    accept();
  });
}

// Why `p` may not have another connection, or "". Each uid gets a share of
// the slots, and the last few are kept for root and the daemon's own uid, so
// no peer, however many sockets it opens, can lock the operator out.
std::string daemon::impl::admit(const peer& p) {
  const limits_config& lim = cfg.limits;
  open_connections();  // drops the closed ones
  std::size_t total = 0, same_uid = 0, unprivileged = 0;
  for (const auto& w : connections) {
    auto c = w.lock();
    if (!c) continue;
    ++total;
    if (c->peer().uid == p.uid) ++same_uid;
    if (!privileged(c->peer())) ++unprivileged;
  }
  if (total >= lim.max_connections)
    return "too many connections (max_connections = " + std::to_string(lim.max_connections) + ")";
  if (same_uid >= connection_share(lim)) {
    return "too many connections from uid " + std::to_string(p.uid) +
           " (connections_per_uid = " + std::to_string(connection_share(lim)) + ")";
  }
  if (!privileged(p) && unprivileged + operator_reserve(lim) >= lim.max_connections) {
    return "too many connections: the last " + std::to_string(operator_reserve(lim)) +
           " are kept for root and the daemon's user";
  }
  return {};
}

bool daemon::impl::privileged(const peer& p) { return p.uid == 0 || p.uid == ::geteuid(); }

std::size_t daemon::impl::open_connections() {
  std::erase_if(connections, [](const auto& w) { return w.expired(); });
  return connections.size();
}

void daemon::impl::watch_signals() {
  signals.async_wait([this](boost::system::error_code ec, int sig) {
    if (ec) return;
    runtime::logger().info("signal {}: shutting down", sig);
    begin_stop();
  });
}

void daemon::impl::watch_hangup() {
  hangup.async_wait([this](boost::system::error_code ec, int) {
    if (ec) return;
    runtime::logger().info("SIGHUP: reloading {}", cfg.path);
    try {
      wf->reload([](const boost::json::object&) {});
    } catch (const std::exception& e) {  // the old config stays in force
      runtime::logger().error("config not reloaded: {}", e.what());
    }
    watch_hangup();
  });
}

void daemon::impl::begin_stop() {
  if (stopping) return;
  stopping = true;
  boost::system::error_code ignored;
  acceptor.close(ignored);
  if (metrics) metrics->stop();
  signals.cancel(ignored);
  hangup.cancel(ignored);
  if (code) code->stop();
  if (schedules) schedules->stop_all();  // (their timers would keep io.run going)
  if (cluster) cluster->quiet();
  for (auto& w : connections)
    if (auto c = w.lock()) c->close();
}

daemon::daemon(config cfg) : impl_(std::make_unique<impl>(std::move(cfg))) {}

daemon::~daemon() {
  request_stop();
  if (impl_->eng) impl_->eng->stop();  // no process logs or exits after this
  runtime::set_log_tap(nullptr);
}

void daemon::start() {
  impl& d = *impl_;
  engine_options eo;
  eo.scheduler = runtime::scheduler_options::with_workers(d.cfg.server.workers);
  eo.scheduler.max_processes = d.cfg.limits.max_processes;
  eo.scheduler.watch.slice =
      std::chrono::microseconds(static_cast<std::int64_t>(d.cfg.server.time_slice * 1e6));
  eo.scheduler.exit_hook = [&d](const runtime::exit_info& e, const runtime::process_context& ctx,
                                std::string_view script) {
    d.exits.on_exit(e, ctx, script);
    d.code->on_any_exit(e, ctx);
    d.ev.on_any_exit(e);
  };
  if (d.cfg.storage.backend == "postgres") {
    eo.postgres = postgres_options_of(d.cfg.storage);
    eo.scheduler.node = d.cfg.cluster.node;  // pids name the node they run on
  } else
    eo.data_dir = d.cfg.storage.data_dir;
  d.check_socket();
  d.eng = std::make_unique<engine>(std::move(eo));
  d.eng->storage().set_quotas(
      {d.cfg.storage.namespace_bytes,
       {d.cfg.storage.namespace_quotas.begin(), d.cfg.storage.namespace_quotas.end()}});
  d.listen_metrics();  // first: a failure leaves no socket file behind
  d.listen();
  d.make_parts();
  d.watch_signals();
  d.eng->scheduler().code().configure({d.cfg.scripts.cache_bytes, std::chrono::milliseconds(1000)});
  runtime::set_source_limit(d.cfg.limits.source_bytes);
  runtime::set_pattern_budget(d.cfg.limits.pattern_steps);
  d.watch_hangup();
  if (d.cfg.scripts.watch) d.code->watch();
  d.accept();
  if (auto level = runtime::parse_level(d.cfg.server.log_level)) d.ev.set_backlog_level(*level);
  const limits_config& lc = d.cfg.limits;
  d.ev.set_bounds(
      {lc.remembered_exits, lc.remembered_exit_bytes, lc.log_backlog, lc.log_backlog_bytes});
  runtime::set_log_tap(d.ev.tap());
  // Unfinished runs first: a durable workflow's start then finds its run
  // live. In a cluster, the runs this node claims (its last daemon's among
  // them, once that one's lease has lapsed).
  if (d.cluster)
    d.cluster->start();
  else if (d.runs)
    d.runs->resume_unfinished();
  d.wf->start_boot();
  runtime::logger().info("luad {} serving on {} (data in {})", luad_version, d.cfg.server.socket,
                         d.eng->storage().where());
}

int daemon::run() {
  impl& d = *impl_;
  d.io.run();  // returns once the acceptor, signals and every connection are gone
  d.compiler->stop();
  // Shutdown: CANCEL everything, give it the grace period, then stop (kills the rest).
  runtime::scheduler& sched = d.eng->scheduler();
  auto deadline = std::chrono::steady_clock::now() +
                  std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                      std::chrono::duration<double>(d.cfg.server.grace_period));
  // Durable runs first, and killed rather than canceled: a CANCEL would enter
  // their histories and end them, where they must stay resumable.
  if (d.runs) d.runs->stop_all();
  sched.cancel_all("the daemon is shutting down");
  while (sched.alive() > 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  if (d.cluster) d.cluster->leave();  // its runs, unfinished, go to the other nodes now
  d.eng->stop();
  runtime::set_log_tap(nullptr);
  boost::system::error_code ignored;
  fs::remove(d.cfg.server.socket, ignored);
  runtime::logger().info("stopped");
  return 0;
}

std::uint16_t daemon::metrics_port() const { return impl_->metrics ? impl_->metrics->port() : 0; }

void daemon::request_stop() {
  asio::post(impl_->io, [this] { impl_->begin_stop(); });
}

int serve(const std::string& config_path, const std::string& log_level) {
  config cfg;
  try {
    cfg = load_config(config_path);
  } catch (const config_error& e) {
    std::cerr << e.what() << '\n';
    return 2;
  }
  auto level = runtime::parse_level(log_level.empty() ? cfg.server.log_level : log_level);
  runtime::init_logging(level.value_or(runtime::log_level::info), cfg.server.log_format == "json"
                                                                      ? runtime::log_format::json
                                                                      : runtime::log_format::text);
  try {
    daemon d(std::move(cfg));
    d.start();
    return d.run();
  } catch (const std::exception& e) {
    std::cerr << "luad serve: " << e.what() << '\n';
    return 1;
  }
}

}  // namespace luad::server
