// The metrics endpoint ([metrics] listen): HTTP/1.1 over TCP with Boost.Beast
// on the daemon's io thread. GET /metrics answers 200 with the Prometheus
// exposition; another path 404, another method 405.
//
// DESIGN. A scraper must not be able to hold the daemon's memory or its
// slots: a request head may be at most `max_head_bytes` (431 past it) and is
// never followed by a body read (a request that has one is answered, then the
// connection closed); each request, from the moment the connection waits for
// it to the moment its answer is written, has `timeout` (a slow-loris client
// or an idle keep-alive connection is closed then); and at most
// `max_connections` are open at once. One more takes the place of an open
// one closing after its answer, else of the one that has waited longest for
// a request head (an idle keep-alive connection, a slow-loris client), so that
// clients which never finish a request cannot lock a scraper out; when every
// one is busy answering, the newcomer is answered 503 and closed. io thread
// only.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace luad::server {

class metrics_listener {
 public:
  struct limits {
    std::size_t max_connections = 8;
    std::size_t max_head_bytes = 8192;
    std::chrono::milliseconds timeout{10'000};
  };

  /// `exposition` makes the body of each GET /metrics (on the io thread).
  metrics_listener(boost::asio::io_context& io, std::function<std::string()> exposition, limits l);
  ~metrics_listener();
  metrics_listener(const metrics_listener&) = delete;
  metrics_listener& operator=(const metrics_listener&) = delete;

  /// Binds `address`:`port` (port 0: a free one), listens and logs where.
  /// Throws std::runtime_error naming the address and the cause.
  void start(const std::string& address, std::uint16_t port);
  /// The port it listens on (0 before start).
  std::uint16_t port() const { return port_; }
  /// Connections open now.
  std::size_t connections();
  /// Closes the acceptor and every connection. Idempotent.
  void stop() noexcept;

  class session;  // one connection (metrics_listener.cpp)

 private:
  void accept();
  void admit(boost::asio::ip::tcp::socket s);
  static void refuse(boost::asio::ip::tcp::socket s);

  std::function<std::string()> exposition_;
  limits limits_;
  boost::asio::ip::tcp::acceptor acceptor_;
  std::vector<std::weak_ptr<session>> sessions_;
  std::uint16_t port_ = 0;
  bool stopped_ = false;
};

}  // namespace luad::server
