// The fetch dispatcher: an HTTP/1.1 client (Boost.Beast, TLS through OpenSSL)
// on its own Asio io_context thread, serving fetch.request commands. It keeps
// idle keep-alive connections per (scheme, host, port), caps the requests in
// flight (the rest wait in FIFO order), enforces connect and total timeouts
// and a response-size cap, and drops a request whose process stopped waiting.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

#include "dispatcher/registry.hpp"
#include "runtime/histogram.hpp"

namespace luad::dispatcher {

namespace fetch_detail {
struct state;
}

/// How a request ended, for the metrics; fetch_outcome_name() gives its label.
enum class fetch_outcome : std::uint8_t {
  status_1xx,   ///< a response, by the class of its status ("1xx")
  status_2xx,   ///< "2xx"
  status_3xx,   ///< "3xx": a redirect not followed, or 304
  status_4xx,   ///< "4xx"
  status_5xx,   ///< "5xx" (and the rare status above 599)
  timeout,      ///< the connect or the total timeout passed first
  refused,      ///< the server refused the connection (nothing listens)
  unavailable,  ///< any other network failure: resolving, connecting, TLS, a closed connection
  limit,        ///< the response was too large, or there were too many redirects
  denied,       ///< a redirect to a host the process may not reach
  invalid,      ///< bad arguments, or a redirect to a bad location
  canceled,     ///< nobody waited any more, or the dispatcher stopped
};
inline constexpr std::size_t k_fetch_outcomes = 12;
/// "2xx", "timeout", "refused", ...
std::string_view fetch_outcome_name(fetch_outcome o);

class fetch final : public handler {
 public:
  struct options {
    /// Requests talking to servers at once; later ones wait in FIFO order.
    std::size_t max_in_flight = 256;
    /// Idle keep-alive connections kept per (scheme, host, port); the oldest
    /// is closed when one more comes back.
    std::size_t max_idle_per_host = 256;
    /// Idle connections older than this are closed.
    std::chrono::milliseconds idle_timeout{30'000};
    /// How often requests are checked for a process that stopped waiting
    /// (killed, ended): such a request is canceled and its socket closed.
    std::chrono::milliseconds poll_interval{50};
  };

  /// What the dispatcher is doing; every field is read without locking.
  struct stats {
    std::size_t in_flight = 0;             ///< requests using a connection now
    std::size_t queued = 0;                ///< requests waiting for a slot
    std::size_t idle_connections = 0;      ///< open connections in the pool
    std::uint64_t connections_opened = 0;  ///< TCP connections made so far
    std::uint64_t completed = 0;           ///< requests finished (either way)
    /// Requests ended, by fetch_outcome (those refused at submit included).
    std::array<std::uint64_t, k_fetch_outcomes> outcomes{};
    std::uint64_t sent_bytes = 0;  ///< HTTP bytes written to servers (head and body; before TLS)
    std::uint64_t received_bytes = 0;  ///< HTTP bytes read from them (the same)
  };

  fetch();
  explicit fetch(options opts);
  ~fetch();  ///< calls stop()
  fetch(const fetch&) = delete;
  fetch& operator=(const fetch&) = delete;

  /// Registers fetch.request in `r`.
  void register_in(registry& r) { r.add(command_id::fetch_request, *this); }
  /// Starts the io_context thread.
  void start();
  /// Completes every queued and in-flight request with `canceled`, closes
  /// every connection and joins the thread. Idempotent.
  void stop();

  /// fetch.request: args and result as described in dispatcher/fetch_request.hpp.
  /// Bad arguments complete at once with `invalid`; others complete later on
  /// the io thread. Thread-safe.
  void submit(command&& cmd, completion&& done) override;

  /// A snapshot of the counters (thread-safe).
  stats snapshot() const;
  /// How long each request took, from submit to its answer (queueing,
  /// redirects and a retry included), whatever the outcome. Thread-safe.
  const runtime::histogram& durations() const;

 private:
  std::unique_ptr<fetch_detail::state> state_;
};

}  // namespace luad::dispatcher
