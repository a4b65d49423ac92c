// One client of the daemon's socket: its peer credentials, reading request
// lines, back-pressure, and writing replies and notifications.
//
// DESIGN. A connection lives on the io thread only. It reads one line at a
// time (at most limits.max_request_size bytes) and stops reading while more
// than 4 MiB of replies wait to be written or 64 of its requests wait for an
// answer (an exit, a workflow stop), so a client that never reads cannot make
// the daemon buffer without bound. Log notifications for such a client are
// dropped (and counted) rather than queued. Pending reads and writes own the
// connection; while it is paused, `paused_self_` does, because waiters only
// hold weak references.
#pragma once

#include <boost/asio.hpp>
#include <boost/json.hpp>

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>

#include "runtime/result.hpp"
#include "server/access.hpp"

namespace luad::server {

struct services;

class connection : public std::enable_shared_from_this<connection> {
 public:
  using socket = boost::asio::local::stream_protocol::socket;

  /// Replies waiting to be written beyond which reading pauses.
  static constexpr std::size_t max_pending_bytes = 4 << 20;
  /// Requests waiting for a later answer beyond which reading pauses: with
  /// the byte bound, what bounds the memory a client that never reads can
  /// make the daemon hold.
  static constexpr std::size_t max_in_flight = 64;

  connection(services& s, socket sock) : s_(s), sock_(std::move(sock)) {}

  /// Checks the peer (SO_PEERCRED), then reads requests. A refused peer gets
  /// one error line and is closed.
  void start();
  /// The peer's credentials (valid after start()).
  const server::peer& peer() const { return peer_; }
  /// Answers a request whose handler deferred it (see methods.hpp): a result
  /// or an error reply. Resumes reading if it was paused on in-flight requests.
  void finish_deferred(const boost::json::value& id, const runtime::result<boost::json::value>& r);
  /// A notification (no id): a log line or an exit the client subscribed to.
  /// Droppable ones are dropped while the client does not read; the next one
  /// sent is preceded by a `dropped` count.
  void notify(const char* method, const boost::json::value& params, bool droppable);
  /// Closes the socket now (pending writes are abandoned).
  void close();

 private:
  void read();
  void handle(const std::string& line);
  void send(const boost::json::value& reply);
  void write();
  /// Closes once the lines queued so far are written.
  void close_after_write() { closed_ = true; }

  services& s_;
  socket sock_;
  server::peer peer_;
  std::string in_;
  std::deque<std::string> out_;
  std::size_t pending_bytes_ = 0;
  std::uint64_t dropped_ = 0;                // log notifications not sent (see notify)
  std::size_t in_flight_ = 0;                // requests answered later
  std::shared_ptr<connection> paused_self_;  // set while reading is paused (see read)
  bool reading_ = false, writing_ = false;
  bool closed_ = false;  // no more reading or notifications; closes once written
};

}  // namespace luad::server
