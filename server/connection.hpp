// One client of the daemon's socket: its peer credentials, reading request
// lines, back-pressure, and writing replies and notifications.
//
// DESIGN. A connection lives on the io thread only. It reads chunks into a
// buffer and handles each complete line (at most limits.max_request_size
// bytes), and stops reading while more than 4 MiB of replies wait to be
// written or 64 of its requests wait for an answer (an exit, a workflow
// stop), so a client that never reads cannot make the daemon buffer without
// bound. Log notifications for such a client are dropped (and counted) rather
// than queued. Pending reads and writes own the connection; while it is
// paused, `paused_self_` does, because waiters only hold weak references.
//
// One timer (holding only a weak reference) enforces two deadlines: a line
// whose first byte has arrived must end within limits.request_timeout
// (slowloris), and a connection with no partial line, no request in flight and
// no subscription is closed after limits.idle_timeout of silence. The timer
// is moved earlier only when a line starts; otherwise it fires, finds the
// deadline moved by activity, and sleeps again, so activity costs no syscall.
#pragma once

#include <boost/asio.hpp>
#include <boost/json.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include "proto/json_rpc.hpp"
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

  /// The most bytes one read takes from the socket.
  static constexpr std::size_t read_chunk = 16 << 10;

  /// A connection from `p` (the daemon read its credentials at accept).
  connection(services& s, socket sock, server::peer p);

  /// The peer's credentials (SO_PEERCRED), or nullopt if they cannot be read.
  static std::optional<server::peer> credentials(socket& sock);

  /// Checks the peer (may_connect), then reads requests. A refused peer gets
  /// one error line and is closed.
  void start();
  /// The peer's credentials (valid after start()).
  const server::peer& peer() const { return peer_; }
  /// Answers a request whose handler deferred it (see methods.hpp): a result
  /// or an error reply. Resumes reading if it was paused on in-flight requests.
  void finish_deferred(const boost::json::value& id, const runtime::result<boost::json::value>& r);
  /// The io thread's executor, to post a deferred answer to from elsewhere.
  boost::asio::any_io_executor executor() { return sock_.get_executor(); }
  /// A notification (no id): a log line or an exit the client subscribed to.
  /// Droppable ones are dropped while the client does not read; the next one
  /// sent is preceded by a `dropped` count.
  void notify(const char* method, const boost::json::value& params, bool droppable);
  /// Closes the socket now (pending writes are abandoned).
  void close();

 private:
  using clock = std::chrono::steady_clock;
  void read();
  /// Handles the complete lines buffered; false when reading must not go on
  /// (paused, closed, or a line too long).
  bool take_lines();
  void handle(const std::string& line);
  /// Tracks subscriptions (they keep a connection from being idle).
  void note_reply(const proto::request& req, const boost::json::object& reply);
  bool idle() const { return !line_started_ && in_flight_ == 0 && subscribed_.empty(); }
  /// Makes the timer fire no later than `when`.
  void schedule(clock::time_point when);
  void check_deadlines();
  void send(const boost::json::value& reply);
  void write();
  /// Closes once the lines queued so far are written (or after 5 s, for a
  /// peer that does not read them).
  void close_after_write();

  services& s_;
  socket sock_;
  server::peer peer_;
  std::string in_;           // bytes read and not yet handled
  std::size_t scanned_ = 0;  // in_[0, scanned_) holds no '\n'
  boost::asio::steady_timer timer_;
  bool timer_armed_ = false;
  clock::time_point last_activity_;
  std::optional<clock::time_point> line_started_;  // a partial line is buffered
  std::set<std::string> subscribed_;               // pids whose exit it awaits
  bool taking_ = false;                            // take_lines is on the stack
  std::deque<std::string> out_;
  std::size_t pending_bytes_ = 0;
  std::uint64_t dropped_ = 0;                // log notifications not sent (see notify)
  std::size_t in_flight_ = 0;                // requests answered later
  std::shared_ptr<connection> paused_self_;  // set while reading is paused (see read)
  bool reading_ = false, writing_ = false;
  bool closed_ = false;  // no more reading or notifications; closes once written
};

}  // namespace luad::server
