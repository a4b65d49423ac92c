// One PostgreSQL connection driven without blocking on an Asio io_context:
// libpq in non-blocking mode, its socket watched as a stream_descriptor. It
// connects, runs batches of statements as one pipeline (one round trip for a
// whole batch, however many statements it has), and after the connection is
// lost fails what was in flight with `unavailable` and connects again, with a
// growing pause. The PostgreSQL backend of the store (issue 16) is built on it.
//
// DESIGN. Everything but run() happens on the io_context's thread, so the
// session needs no lock: run() posts. A batch is sent whole, then a pipeline
// sync; each statement's result comes back in order. A statement that fails
// aborts the rest of its batch (PostgreSQL skips them up to the sync), so a
// batch answers with all its results or with its first error. Parameters go
// in binary (a bytea is its bytes) or text (numbers, as their SQL literal);
// results come in binary: columns are read with the typed accessors below,
// which refuse a column of another size. Nothing here knows SQL beyond that.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/result.hpp"

struct pg_conn;
struct pg_result;

namespace luad::dispatcher {

/// A statement's parameter: NULL, bytes (sent as binary, e.g. to a bytea), or
/// text (a number's literal, cast in the SQL).
struct pg_param {
  std::optional<std::string> value;
  bool binary = true;
  static pg_param null() { return {}; }
  static pg_param bytes(std::string_view b) { return {std::string(b), true}; }
  static pg_param text(std::string t) { return {std::move(t), false}; }
  static pg_param integer(std::int64_t i) { return text(std::to_string(i)); }
  static pg_param real(double d);
};

/// A one-dimensional array parameter in PostgreSQL's binary array format,
/// so that one statement can carry a whole batch's keys (with `unnest`).
/// Element types: bytea, int8, text (its bytes: valid UTF-8), float8; cast
/// it in the SQL (`$1::bytea[]`).
class pg_array {
 public:
  enum class of : unsigned { bytea = 17, int8 = 20, text = 25, float8 = 701 };
  explicit pg_array(of type) : type_(type) {}
  void bytes(std::string_view b);
  void integer(std::int64_t i);
  void real(double d);
  void null();
  std::size_t size() const { return count_; }
  pg_param param() const;

 private:
  void element(const char* p, std::size_t n);
  of type_;
  std::size_t count_ = 0;
  bool nulls_ = false;
  std::string elements_;  // each: its length (int32, -1 for NULL) and bytes
};

struct pg_statement {
  std::string sql;  ///< $1, $2... for the parameters
  std::vector<pg_param> params;
};

/// A statement of `text` with `params`: the postgres_* files' shorthand.
inline pg_statement sql(std::string text, std::vector<pg_param> params = {}) {
  return {std::move(text), std::move(params)};
}

/// The rows one statement returned (binary format), and how many it changed.
class pg_rows {
 public:
  pg_rows() = default;
  explicit pg_rows(pg_result* r);
  ~pg_rows();
  pg_rows(pg_rows&& o) noexcept;
  pg_rows& operator=(pg_rows&& o) noexcept;
  pg_rows(const pg_rows&) = delete;
  pg_rows& operator=(const pg_rows&) = delete;

  int size() const;     ///< rows
  int columns() const;  ///< columns
  bool is_null(int row, int col) const;
  /// A bytea or text column's bytes.
  std::string_view bytes(int row, int col) const;
  /// An int8 column (an int4 or int2 is widened); 0 for NULL.
  std::int64_t integer(int row, int col) const;
  /// A float8 column; 0 for NULL.
  double real(int row, int col) const;
  /// A bool column; false for NULL.
  bool boolean(int row, int col) const;
  /// Rows an INSERT, UPDATE or DELETE changed.
  std::int64_t affected() const;

 private:
  pg_result* r_ = nullptr;
};

/// Whether `e` (a run() failure) says the connection was lost or refused or
/// the server is shutting down, rather than that a statement failed: the
/// batch may not have run at all, or may have committed if its COMMIT was
/// sent before the loss.
bool pg_connection_lost(const runtime::error& e);

/// What run() answers: each statement's rows, in order.
using pg_batch_result = runtime::result<std::vector<pg_rows>>;

struct pg_session_options {
  /// A libpq connection string or URL (the password may come from
  /// PGPASSWORD or PGPASSFILE, as libpq reads them).
  std::string conninfo;
  /// A password that overrides any in `conninfo` ("" = none given here).
  std::string password{};
  /// Sent as statement_timeout; 0 = none.
  std::chrono::milliseconds statement_timeout{0};
  /// A connection attempt that has not finished by then fails.
  std::chrono::milliseconds connect_timeout{5000};
  /// Pauses between connection attempts: from `retry_min`, doubling, at most
  /// `retry_max`.
  std::chrono::milliseconds retry_min{50}, retry_max{2000};
  /// Called on the io thread for each notification (LISTEN) the idle
  /// connection receives, with its channel.
  std::function<void(std::string_view channel)> on_notify{};
};

class pg_session : public std::enable_shared_from_this<pg_session> {
 public:
  using batch_fn = std::function<void(pg_batch_result)>;
  /// Called on the io thread each time the connection comes up (after
  /// start() and after each reconnection), before queued batches run.
  using ready_fn = std::function<void()>;

  static std::shared_ptr<pg_session> make(boost::asio::io_context& io, pg_session_options opts);
  ~pg_session();
  pg_session(const pg_session&) = delete;
  pg_session& operator=(const pg_session&) = delete;

  /// Why `conninfo` cannot be used (libpq's reason: a malformed URL, an
  /// unknown keyword), or nullopt. Checks the text only: no connection.
  static std::optional<std::string> conninfo_error(const std::string& conninfo);

  /// Starts connecting (and keeps reconnecting after a loss, until close()).
  /// A malformed connection string is not retried: the session closes, with
  /// conninfo_error() as its last_error().
  void start(ready_fn on_ready = {});
  /// Runs `batch` as one pipeline once the session is connected; `done` runs
  /// on the io thread with every statement's rows or the first error:
  /// `unavailable` (retryable) when the connection is down or lost before the
  /// answer (the batch may or may not have been applied then, unless it was
  /// one transaction), `invalid` with the server's message otherwise. Any
  /// thread.
  void run(std::vector<pg_statement> batch, batch_fn done);
  /// Fails what is queued or in flight with `canceled` and closes the
  /// connection for good. Any thread; idempotent.
  void close();

  /// Connections made so far (1 after the first; more after losses). Any thread.
  std::uint64_t connections() const { return connections_.load(std::memory_order_relaxed); }
  /// Why the last attempt or the last connection failed ("" if none has).
  /// Any thread.
  std::string last_error() const;

 private:
  enum class state : std::uint8_t { idle, connecting, ready, busy, waiting_retry, closed };
  struct job {
    std::vector<pg_statement> batch;
    batch_fn done;
  };
  pg_session(boost::asio::io_context& io, pg_session_options opts);
  void connect();
  void poll_connect();
  void watch_socket();
  void drop_socket();
  void on_connected();
  void lost(const std::string& why);
  void next_job();
  void watch_idle();
  void send_job();
  void flush();
  void read_results();
  void finish_job(pg_batch_result r);
  void wait(bool for_write);  // for the socket, then step()
  void step();
  void fail_all(const runtime::error& e);
  bool connected() const { return state_ == state::ready || state_ == state::busy; }
  void set_last_error(std::string why);

  boost::asio::io_context& io_;
  pg_session_options opts_;
  pg_conn* conn_ = nullptr;
  boost::asio::posix::stream_descriptor socket_;
  boost::asio::steady_timer timer_;
  state state_ = state::idle;
  ready_fn on_ready_;
  std::deque<job> queue_;
  std::optional<job> current_;
  std::vector<pg_rows> rows_;          // of the current job, so far
  std::optional<runtime::error> err_;  // its first error
  bool sending_ = false;               // the current batch is not all sent yet
  bool read_pending_ = false, write_pending_ = false;
  std::uint64_t socket_gen_ = 0;  // bumped each time the descriptor is dropped
  std::chrono::milliseconds retry_;
  std::atomic<std::uint64_t> connections_{0};
  mutable std::mutex last_error_mu_;
  std::string last_error_;  // guarded by last_error_mu_; written on the io thread
};

}  // namespace luad::dispatcher
