// Inside the fetch dispatcher (not for other folders): connections, the idle
// pool, one request's exchange, and the state they share. Everything here is
// touched on the io thread only, except the atomics, the start/stop fields and
// an exchange's construction (on the submitting worker, before it is posted).
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>

#include <atomic>
#include <chrono>
#include <deque>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>

#include "dispatcher/fetch.hpp"
#include "dispatcher/fetch_request.hpp"

namespace luad::dispatcher::fetch_detail {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using steady = std::chrono::steady_clock;

/// One TCP connection, plain or wrapped in TLS, to the server named by `key`.
class connection {
 public:
  connection(asio::io_context& io, std::string pool_key);
  connection(asio::io_context& io, ssl::context& tls, std::string pool_key);

  tcp::socket& socket() { return secure_ ? secure_->next_layer() : *plain_; }
  ssl::stream<tcp::socket>* secure() { return secure_ ? &*secure_ : nullptr; }
  /// Calls `f` with the stream to read and write (the TLS stream or the socket).
  template <class F>
  void with_stream(F&& f) {
    if (secure_) {
      f(*secure_);
    } else {
      f(*plain_);
    }
  }
  /// Closes the socket; pending operations complete with operation_aborted.
  void close() noexcept;
  /// An idle connection the server has closed (or sent unasked-for bytes on)
  /// must not be reused: one non-blocking peek tells.
  bool looks_alive() noexcept;

  const std::string key;      ///< "scheme://host:port" (+ " insecure" without verification)
  beast::flat_buffer buffer;  ///< bytes read past a response (must be empty to reuse)
  steady::time_point idle_since;
  bool reused = false;  ///< carried an earlier request

 private:
  std::optional<tcp::socket> plain_;
  std::optional<ssl::stream<tcp::socket>> secure_;
};

/// Idle keep-alive connections by key, newest reused first.
class pool {
 public:
  explicit pool(std::size_t max_per_key) : max_per_key_(max_per_key) {}
  /// A live idle connection for `key`, or null.
  std::unique_ptr<connection> take(const std::string& key);
  /// Keeps `c` for reuse; closes the key's oldest when over the cap.
  void put(std::unique_ptr<connection> c, steady::time_point now);
  /// Closes connections idle since before `cutoff`.
  void expire(steady::time_point cutoff);
  void clear();
  std::size_t size() const { return count_; }

 private:
  std::unordered_map<std::string, std::deque<std::unique_ptr<connection>>> idle_;
  std::size_t count_ = 0;
  std::size_t max_per_key_;
};

class exchange;

/// The dispatcher's state (fetch's pimpl).
struct state {
  explicit state(const fetch::options& o);

  /// io thread: a new request enters (runs now, or waits for a slot).
  void admit(std::shared_ptr<exchange> ex);
  /// io thread: `ex` finished; frees its slot and starts waiting requests.
  void retire(exchange& ex);
  /// io thread: arms the sweep that finds abandoned requests and old idle connections.
  void arm_sweep();
  void sweep_now();
  /// io thread: cancels everything (fetch::stop).
  void shutdown();
  void publish();  // copies the io-thread counters into the atomics

  const fetch::options opts;
  asio::io_context io;
  /// io thread: the TLS context, the system CA store read on first use, not
  /// at start (reading it costs ~70 ms; most engines never make an https call).
  ssl::context& tls();
  pool idle;
  std::list<std::shared_ptr<exchange>> live;      // admitted and not finished
  std::deque<std::shared_ptr<exchange>> waiting;  // over the cap; finished ones skipped
  asio::steady_timer sweep;
  steady::time_point sweep_due = steady::time_point::max();
  std::size_t running = 0;   // io thread: started and not finished
  std::size_t queued = 0;    // io thread: waiting and not finished
  bool accepting = false;    // io thread: false once shutdown ran
  bool draining = false;     // io thread: retire is starting waiting requests
  std::uint64_t opened = 0;  // io thread
  std::uint64_t completed = 0;

  ssl::context tls_{ssl::context::tls_client};
  bool tls_ready_ = false;  // io thread

  std::atomic<std::size_t> in_flight_seen{0}, queued_seen{0}, idle_seen{0};
  std::atomic<std::uint64_t> opened_seen{0}, completed_seen{0};
  // Metrics, counted where they happen (any thread for `outcomes`: a
  // request refused at submit is counted there).
  std::array<std::atomic<std::uint64_t>, k_fetch_outcomes> outcomes{};
  std::atomic<std::uint64_t> sent_bytes{0}, received_bytes{0};
  runtime::histogram durations;
  /// Counts a request that ended with `e` (refused: the connection was).
  void count_failure(const error& e, bool refused);

  std::mutex mu;  // start and stop
  bool started = false;
  std::thread thread;
  // Submits check `open` and post without locking; stop() closes it, then
  // waits for `submitting` to reach 0, so every admitted post precedes shutdown.
  std::atomic<bool> open{false};
  std::atomic<int> submitting{0};
};

/// One request from admission to completion, across redirects and a retry.
/// Owned through shared_ptr by the live list and by every pending handler.
class exchange : public std::enable_shared_from_this<exchange> {
 public:
  exchange(state& s, fetch_request&& req, completion&& done);

  /// io thread: arms the total deadline (the request may still wait in queue).
  void arm_deadline();
  /// io thread: takes a slot and starts the first hop.
  void start();
  /// io thread: completes with `e` and closes the connection. Idempotent.
  void fail(error e);
  /// Completes with `e` a request that was never admitted (any thread).
  void reject(error e);
  bool finished() const { return finished_; }
  bool started() const { return started_; }
  bool abandoned() const { return done_.abandoned(); }

  std::list<std::shared_ptr<exchange>>::iterator live_pos;

 private:
  void build_message();
  void begin_hop();
  void connect();
  void on_connect(const boost::system::error_code& ec);
  void handshake();
  void on_handshake(const boost::system::error_code& ec);
  void write();
  void on_write(const boost::system::error_code& ec, std::size_t bytes);
  void on_read(const boost::system::error_code& ec, std::size_t bytes);
  bool follow_redirect(bool reusable);
  bool may_retry() const;
  void retry();
  void release_connection(bool reusable);
  void succeed(value v, unsigned status);
  void finish();
  error unavailable(std::string message, bool retryable = true) const;

  state& s_;
  steady::time_point submitted_ = steady::now();
  fetch_request req_;
  completion done_;
  asio::steady_timer deadline_;
  asio::steady_timer connect_timer_;
  std::optional<tcp::resolver> resolver_;
  std::unique_ptr<connection> conn_;
  http::request<http::string_body> msg_;
  std::optional<http::response_parser<http::string_body>> parser_;
  std::string key_;
  int hops_ = 0;
  bool started_ = false;
  bool finished_ = false;
  bool connecting_ = false;
  bool retried_ = false;
  bool refused_ = false;  // the last connect was refused (for the metrics)
};

}  // namespace luad::dispatcher::fetch_detail
