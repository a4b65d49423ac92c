// http: requests/s from Lua processes looping on http.get against a local
// keep-alive Beast server, beside wrk against the same server in the same run.
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>

#include "bench/benchmarks.hpp"
#include "runtime/code.hpp"
#include "server/engine.hpp"

namespace luad::bench {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

constexpr std::size_t client_processes = 100;

constexpr const char* client_script = R"(
local get = require('http').get
local url, n = ...
for _ = 1, n do
  local r, e = get(url)
  if not r then error(tostring(e)) end
end
)";

// One keep-alive connection: read a request, answer "ok", repeat.
class session : public std::enable_shared_from_this<session> {
 public:
  explicit session(tcp::socket s) : socket_(std::move(s)) {
    res_.result(http::status::ok);
    res_.version(11);
    res_.set(http::field::content_type, "text/plain");
    res_.body() = "ok";
    res_.prepare_payload();
  }
  void read() {
    req_ = {};
    http::async_read(socket_, buffer_, req_,
                     [self = shared_from_this()](beast::error_code ec, std::size_t) {
                       if (!ec) self->write();
                     });
  }

 private:
  void write() {
    res_.keep_alive(req_.keep_alive());
    http::async_write(socket_, res_,
                      [self = shared_from_this()](beast::error_code ec, std::size_t) {
                        if (!ec && self->res_.keep_alive()) self->read();
                      });
  }
  tcp::socket socket_;
  beast::flat_buffer buffer_;
  http::request<http::string_body> req_;
  http::response<http::string_body> res_;
};

// The server both clients measure against: one io thread on 127.0.0.1.
class ok_server {
 public:
  ok_server() : acceptor_(io_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
    accept();
    thread_ = std::thread([this] { io_.run(); });
  }
  ~ok_server() {
    io_.stop();
    thread_.join();
  }
  std::string url() const {
    return "http://127.0.0.1:" + std::to_string(acceptor_.local_endpoint().port()) + "/";
  }
  std::string permission() const {
    return "http:127.0.0.1:" + std::to_string(acceptor_.local_endpoint().port());
  }

 private:
  void accept() {
    acceptor_.async_accept([this](beast::error_code ec, tcp::socket s) {
      if (ec) return;
      s.set_option(tcp::no_delay(true));
      std::make_shared<session>(std::move(s))->read();
      accept();
    });
  }
  asio::io_context io_;
  tcp::acceptor acceptor_;
  std::thread thread_;
};

// Runs `total` requests from client_processes processes; returns requests/s.
double run_luad(server::engine& eng, const ok_server& srv, std::size_t total) {
  runtime::chunk_ptr code = runtime::compile(client_script, "http_client.lua");
  std::size_t each = total / client_processes;
  exit_latch latch(client_processes);
  auto t0 = wall_clock::now();
  for (std::size_t i = 0; i < client_processes; ++i) {
    runtime::spawn_options so;
    so.args = {srv.url(), static_cast<std::int64_t>(each)};
    so.ctx.permissions = {srv.permission()};
    so.on_exit = latch.callback();
    if (!eng.scheduler().spawn(code, std::move(so))) {
      note("http: spawn refused");
      std::exit(1);
    }
  }
  latch.wait();
  double wall = seconds_since(t0);
  if (latch.abnormal()) note("http: " + std::to_string(latch.abnormal()) + " clients failed");
  return static_cast<double>(each * client_processes) / wall;
}

// wrk -t2 -c100 -d5s against the server; 0 when wrk is missing or says nothing usable.
double run_wrk(const ok_server& srv) {
  if (std::system("command -v wrk > /dev/null 2>&1") != 0) return 0;
  std::string cmd =
      "wrk -t2 -c" + std::to_string(client_processes) + " -d5s " + srv.url() + " 2>&1";
  FILE* out = popen(cmd.c_str(), "r");
  if (!out) return 0;
  double rate = 0;
  char line[512];
  while (std::fgets(line, sizeof line, out)) {
    std::sscanf(line, " Requests/sec: %lf", &rate);
  }
  pclose(out);
  return rate;
}

}  // namespace

void bench_http(const options& opts) {
  ok_server srv;
  server::engine eng(runtime::scheduler_options::with_workers(opts.workers));
  run_luad(eng, srv, 10000);  // warm-up: connections, pools, allocator arenas

  double cpu0 = cpu_seconds();
  auto t0 = wall_clock::now();
  double luad_rate = run_luad(eng, srv, opts.http_requests);
  double cpu = (cpu_seconds() - cpu0) / seconds_since(t0);
  report("http_luad", luad_rate, "req/s");
  note("http: " + std::to_string(opts.http_requests) + " requests from " +
       std::to_string(client_processes) + " processes, " +
       std::to_string(eng.scheduler().worker_count()) + " workers, " +
       std::to_string(eng.fetch().snapshot().connections_opened) +
       " connections opened, cpu (client + server) " + std::to_string(cpu) + " cores");
  eng.stop();

  double wrk_rate = run_wrk(srv);
  if (wrk_rate <= 0) {
    note("wrk not installed (apt-get install wrk): no http_wrk figure");
    return;
  }
  report("http_wrk", wrk_rate, "req/s");
  report("http_ratio", luad_rate / wrk_rate, "x");
}

}  // namespace luad::bench
