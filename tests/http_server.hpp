// A real HTTP/1.1 server for the http client's tests: Boost.Beast on
// 127.0.0.1 with an ephemeral port and its own thread, plain or TLS (with a
// self-signed certificate made in memory), counting connections.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace luad::test {

/// Routes, by request path:
///   /status/N       status N, body "status N"
///   /echo           200, the request body echoed back
///   /chunked        200, "hello, chunked world" sent in several chunks
///   /slow/MS        200 after MS milliseconds: the request body, or "slow"
///   /big/N          200 with N bytes of 'x' (chunked when the query is "chunked")
///   /truncated      declares 100000 body bytes, sends 1000, closes the connection
///   /hang           never answers
///   /redirect/N     302 to /redirect/N-1; /redirect/0 answers 200 "landed"
///   /goto/S?URL     status S with Location: URL
///   /multi          200 with two X-Multi header lines ("a" and "b")
///   /close          200 "bye", then closes the connection without saying so
///   anything else   200 "ok"
/// Every connection is kept alive unless the client asks otherwise.
class http_server {
 public:
  /// A request as the server saw it.
  struct seen {
    std::string method, target, body;
    std::vector<std::pair<std::string, std::string>> headers;
    /// The first value of header `name` (any case), or "".
    std::string header(std::string_view name) const;
  };

  /// Starts listening; `tls` serves HTTPS with a fresh self-signed
  /// certificate for IP 127.0.0.1.
  explicit http_server(bool tls = false);
  ~http_server();
  http_server(const http_server&) = delete;
  http_server& operator=(const http_server&) = delete;

  std::uint16_t port() const;
  /// "http://127.0.0.1:PORT" + path ("https://..." for a TLS server).
  std::string url(std::string_view path = "") const;
  /// The permission a process needs to reach this server.
  std::string permission() const;

  /// Connections accepted so far, and those ended (either side closed).
  int accepted() const;
  int closed() const;
  /// Requests read so far.
  int requests() const;
  /// The most requests read and not yet answered at one time.
  int peak_busy() const;
  /// How many requests carried each Idempotency-Key header value.
  std::map<std::string, int> idempotency_keys() const;
  /// The most recent request.
  seen last() const;

  struct impl;  // in http_server.cpp (public so its sessions can name it)

 private:
  std::unique_ptr<impl> impl_;
};

}  // namespace luad::test
