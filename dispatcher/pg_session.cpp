// One PostgreSQL connection on Asio (pg_session.hpp): connecting with
// PQconnectPoll, batches as pipelines, results in binary, reconnection.
#include "dispatcher/pg_session.hpp"

#include "dispatcher/pg_conninfo.hpp"

#include <arpa/inet.h>
#include <libpq-fe.h>
#include <spdlog/spdlog.h>

#include <boost/asio/post.hpp>

#include <bit>
#include <cstring>
#include <utility>

#include "runtime/logging.hpp"

namespace luad::dispatcher {

namespace asio = boost::asio;
using runtime::error_kind;

namespace {

constexpr int k_binary = 1;

// The error for a failed statement, by its SQLSTATE class: what may pass on
// a retry (a lost or refused connection, a full disk, a serialization
// conflict, a deadlock, a read-only server) is `unavailable` and retryable.
runtime::error statement_error(const PGresult* r) {
  const char* state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
  const char* primary = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
  std::string code = state ? state : "";
  std::string message = "postgres: " + std::string(primary ? primary : PQresultErrorMessage(r));
  if (!code.empty()) message += " [SQLSTATE " + code + "]";
  auto cls = std::string_view(code).substr(0, 2);
  if (cls == "08" || cls == "53" || cls == "57" || cls == "40" || code == "25006") {
    if (code == "57014") return runtime::fail(error_kind::timeout, message, true);
    return runtime::fail(error_kind::unavailable, message, true);
  }
  if (cls == "23" || cls == "22") return runtime::fail(error_kind::invalid, message);
  return runtime::fail(error_kind::internal, message);
}

constexpr std::string_view k_connection_marker = " [connection]";

runtime::error connection_error(const std::string& why) {
  return runtime::fail(error_kind::unavailable,
                       "postgres: " + why + std::string(k_connection_marker), true);
}

std::string trimmed(const char* text) {
  std::string s = text ? text : "";
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

std::uint64_t be64(const char* p) {
  std::uint64_t v;
  std::memcpy(&v, p, 8);
  if constexpr (std::endian::native == std::endian::little) v = __builtin_bswap64(v);
  return v;
}

}  // namespace

pg_param pg_param::real(double d) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.17g", d);
  return text(buf);
}

// --- pg_array -------------------------------------------------------------------

namespace {

void put32(std::string& out, std::int32_t v) {
  std::uint32_t n = htonl(static_cast<std::uint32_t>(v));
  out.append(reinterpret_cast<const char*>(&n), 4);
}

void put64(std::string& out, std::uint64_t v) {
  if constexpr (std::endian::native == std::endian::little) v = __builtin_bswap64(v);
  out.append(reinterpret_cast<const char*>(&v), 8);
}

}  // namespace

void pg_array::element(const char* p, std::size_t n) {
  put32(elements_, static_cast<std::int32_t>(n));
  elements_.append(p, n);
  ++count_;
}

void pg_array::bytes(std::string_view b) { element(b.data(), b.size()); }

void pg_array::integer(std::int64_t i) {
  put32(elements_, 8);
  put64(elements_, static_cast<std::uint64_t>(i));
  ++count_;
}

void pg_array::real(double d) {
  put32(elements_, 8);
  put64(elements_, std::bit_cast<std::uint64_t>(d));
  ++count_;
}

void pg_array::null() {
  put32(elements_, -1);
  nulls_ = true;
  ++count_;
}

pg_param pg_array::param() const {
  std::string out;
  put32(out, count_ ? 1 : 0);  // dimensions (an empty array has none)
  put32(out, nulls_ ? 1 : 0);
  put32(out, static_cast<std::int32_t>(type_));
  if (count_) {
    put32(out, static_cast<std::int32_t>(count_));
    put32(out, 1);  // lower bound
  }
  out += elements_;
  return {std::move(out), true};
}

// --- pg_rows ------------------------------------------------------------------

pg_rows::pg_rows(pg_result* r) : r_(r) {}
pg_rows::~pg_rows() {
  if (r_) PQclear(r_);
}
pg_rows::pg_rows(pg_rows&& o) noexcept : r_(std::exchange(o.r_, nullptr)) {}
pg_rows& pg_rows::operator=(pg_rows&& o) noexcept {
  if (this != &o) {
    if (r_) PQclear(r_);
    r_ = std::exchange(o.r_, nullptr);
  }
  return *this;
}

int pg_rows::size() const { return r_ ? PQntuples(r_) : 0; }
int pg_rows::columns() const { return r_ ? PQnfields(r_) : 0; }
bool pg_rows::is_null(int row, int col) const { return PQgetisnull(r_, row, col) != 0; }

std::string_view pg_rows::bytes(int row, int col) const {
  if (is_null(row, col)) return {};
  return {PQgetvalue(r_, row, col), static_cast<std::size_t>(PQgetlength(r_, row, col))};
}

std::int64_t pg_rows::integer(int row, int col) const {
  if (is_null(row, col)) return 0;
  const char* p = PQgetvalue(r_, row, col);
  switch (PQgetlength(r_, row, col)) {
    case 8: return static_cast<std::int64_t>(be64(p));
    case 4: {
      std::uint32_t v;
      std::memcpy(&v, p, 4);
      return static_cast<std::int32_t>(ntohl(v));
    }
    case 2: {
      std::uint16_t v;
      std::memcpy(&v, p, 2);
      return static_cast<std::int16_t>(ntohs(v));
    }
    default: return 0;
  }
}

double pg_rows::real(int row, int col) const {
  if (is_null(row, col) || PQgetlength(r_, row, col) != 8) return 0;
  return std::bit_cast<double>(be64(PQgetvalue(r_, row, col)));
}

bool pg_rows::boolean(int row, int col) const {
  return !is_null(row, col) && PQgetlength(r_, row, col) == 1 && PQgetvalue(r_, row, col)[0] != 0;
}

std::int64_t pg_rows::affected() const {
  const char* n = r_ ? PQcmdTuples(r_) : "";
  return *n ? std::strtoll(n, nullptr, 10) : 0;
}

// --- pg_session -----------------------------------------------------------------

std::shared_ptr<pg_session> pg_session::make(asio::io_context& io, pg_session_options opts) {
  return std::shared_ptr<pg_session>(new pg_session(io, std::move(opts)));
}

pg_session::pg_session(asio::io_context& io, pg_session_options opts)
    : io_(io), opts_(std::move(opts)), socket_(io), timer_(io), retry_(opts_.retry_min) {}

pg_session::~pg_session() {
  if (socket_.is_open()) socket_.release();  // libpq owns the descriptor
  if (conn_) PQfinish(conn_);
}

std::optional<std::string> pg_session::conninfo_error(const std::string& conninfo) {
  return pg_conninfo_error(conninfo);
}

std::string pg_session::last_error() const {
  std::lock_guard lock(last_error_mu_);
  return last_error_;
}

void pg_session::set_last_error(std::string why) {
  std::lock_guard lock(last_error_mu_);
  last_error_ = std::move(why);
}

void pg_session::start(ready_fn on_ready) {
  asio::post(io_, [self = shared_from_this(), on_ready = std::move(on_ready)]() mutable {
    if (self->state_ != state::idle) return;
    if (auto bad = conninfo_error(self->opts_.conninfo)) {
      self->set_last_error(*bad);
      self->state_ = state::closed;
      return;
    }
    self->on_ready_ = std::move(on_ready);
    self->connect();
  });
}

void pg_session::run(std::vector<pg_statement> batch, batch_fn done) {
  asio::post(
      io_, [self = shared_from_this(), j = job{std::move(batch), std::move(done)}]() mutable {
        std::string why = self->last_error();
        if (self->state_ == state::closed) {
          j.done(runtime::fail(error_kind::canceled,
                               "postgres: the session is closed" + (why.empty() ? "" : ": " + why),
                               true));
          return;
        }
        if (!self->connected()) {
          j.done(connection_error("not connected (" + (why.empty() ? "not yet" : why) + ")"));
          return;
        }
        self->queue_.push_back(std::move(j));
        if (self->state_ == state::ready) self->next_job();
      });
}

void pg_session::close() {
  asio::post(io_, [self = shared_from_this()] {
    if (self->state_ == state::closed) return;
    self->state_ = state::closed;
    self->timer_.cancel();
    self->drop_socket();
    if (self->conn_) {
      PQfinish(self->conn_);
      self->conn_ = nullptr;
    }
    self->fail_all(runtime::fail(error_kind::canceled, "postgres: the session is closed", true));
  });
}

void pg_session::connect() {
  std::string options;
  if (opts_.statement_timeout.count() > 0)
    options = "-c statement_timeout=" + std::to_string(opts_.statement_timeout.count());
  // Later keywords override what `dbname` expands to; an empty value is skipped.
  const char* keys[] = {"dbname", "options", "fallback_application_name", "password", nullptr};
  const char* values[] = {opts_.conninfo.c_str(), options.c_str(), "luad", opts_.password.c_str(),
                          nullptr};
  conn_ = PQconnectStartParams(keys, values, 1);
  if (!conn_ || PQstatus(conn_) == CONNECTION_BAD) {
    lost(conn_ ? trimmed(PQerrorMessage(conn_)) : "out of memory");
    return;
  }
  state_ = state::connecting;
  timer_.expires_after(opts_.connect_timeout);
  timer_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
    if (!ec && self->state_ == state::connecting) self->lost("connection attempt timed out");
  });
  watch_socket();
  wait(true);  // libpq: wait to write before the first poll
}

void pg_session::poll_connect() {
  if (state_ != state::connecting) return;
  PostgresPollingStatusType st = PQconnectPoll(conn_);
  watch_socket();  // libpq may have moved to another socket (another host)
  switch (st) {
    case PGRES_POLLING_READING: wait(false); return;
    case PGRES_POLLING_WRITING: wait(true); return;
    case PGRES_POLLING_OK: on_connected(); return;
    default: lost(trimmed(PQerrorMessage(conn_))); return;
  }
}

void pg_session::watch_socket() {
  int fd = PQsocket(conn_);
  if (socket_.is_open() && socket_.native_handle() == fd) return;
  drop_socket();
  if (fd >= 0) socket_.assign(fd);
}

// Stops watching the descriptor (libpq owns it); waits pending on it end as
// aborted, and are told apart by their generation.
void pg_session::drop_socket() {
  ++socket_gen_;
  read_pending_ = write_pending_ = false;
  if (socket_.is_open()) socket_.release();
}

void pg_session::on_connected() {
  timer_.cancel();
  if (PQsetnonblocking(conn_, 1) != 0 || PQenterPipelineMode(conn_) != 1) {
    lost(trimmed(PQerrorMessage(conn_)));
    return;
  }
  PQsetNoticeProcessor(
      conn_,
      [](void*, const char* message) { runtime::logger().debug("postgres: {}", trimmed(message)); },
      nullptr);
  state_ = state::ready;
  retry_ = opts_.retry_min;
  connections_.fetch_add(1, std::memory_order_relaxed);
  if (on_ready_) on_ready_();
  next_job();
}

// The connection failed or was lost: fail what waits, then try again later.
void pg_session::lost(const std::string& why) {
  if (state_ == state::closed) return;
  set_last_error(why);
  if (connected()) runtime::logger().warn("postgres: connection lost: {}", why);
  state_ = state::waiting_retry;  // first: failing a job must not start the next
  drop_socket();
  if (conn_) {
    PQfinish(conn_);
    conn_ = nullptr;
  }
  fail_all(connection_error(why));
  timer_.expires_after(retry_);
  retry_ = std::min(retry_ * 2, opts_.retry_max);
  timer_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
    if (!ec && self->state_ == state::waiting_retry) self->connect();
  });
}

bool pg_connection_lost(const runtime::error& e) {
  const std::string& m = e.message;
  return e.kind == error_kind::unavailable && (m.find(k_connection_marker) != std::string::npos ||
                                               m.find("[SQLSTATE 08") != std::string::npos ||
                                               m.find("[SQLSTATE 57P0") != std::string::npos);
}

void pg_session::fail_all(const runtime::error& e) {
  if (current_) finish_job(e);
  std::deque<job> left;
  left.swap(queue_);
  for (job& j : left) j.done(e);
}

// An idle connection is still watched: a server that shuts down or drops it
// is noticed now, not by the next batch.
void pg_session::watch_idle() {
  if (!PQconsumeInput(conn_)) {
    lost(trimmed(PQerrorMessage(conn_)));
    return;
  }
  while (PGnotify* n = PQnotifies(conn_)) {
    std::string channel = n->relname ? n->relname : "";
    PQfreemem(n);
    if (opts_.on_notify) opts_.on_notify(channel);
  }
  wait(false);
}

void pg_session::next_job() {
  if (state_ == state::ready && queue_.empty()) wait(false);  // idle: watch for a loss
  if (state_ != state::ready || queue_.empty()) return;
  current_ = std::move(queue_.front());
  queue_.pop_front();
  state_ = state::busy;
  send_job();
}

void pg_session::send_job() {
  rows_.clear();
  err_.reset();
  std::vector<const char*> values;
  std::vector<int> lengths, formats;
  for (const pg_statement& s : current_->batch) {
    values.clear();
    lengths.clear();
    formats.clear();
    for (const pg_param& p : s.params) {
      values.push_back(p.value ? p.value->data() : nullptr);
      lengths.push_back(p.value ? static_cast<int>(p.value->size()) : 0);
      formats.push_back(p.binary ? k_binary : 0);
    }
    if (PQsendQueryParams(conn_, s.sql.c_str(), static_cast<int>(s.params.size()), nullptr,
                          values.data(), lengths.data(), formats.data(), k_binary) != 1) {
      lost(trimmed(PQerrorMessage(conn_)));
      return;
    }
  }
  if (PQpipelineSync(conn_) != 1) {
    lost(trimmed(PQerrorMessage(conn_)));
    return;
  }
  sending_ = true;
  flush();
}

// Sends what libpq holds; while the server is slow to take it, reads what it
// answers meanwhile, so that neither side waits on the other.
void pg_session::flush() {
  if (state_ != state::busy) return;
  int r = PQflush(conn_);
  if (r < 0) {
    lost(trimmed(PQerrorMessage(conn_)));
    return;
  }
  if (r == 0) {
    sending_ = false;
    read_results();
    return;
  }
  if (!PQconsumeInput(conn_)) {
    lost(trimmed(PQerrorMessage(conn_)));
    return;
  }
  wait(true);
  wait(false);
}

void pg_session::read_results() {
  if (state_ != state::busy) return;
  if (!PQconsumeInput(conn_)) {
    lost(trimmed(PQerrorMessage(conn_)));
    return;
  }
  while (!PQisBusy(conn_)) {
    PGresult* r = PQgetResult(conn_);
    if (!r) continue;  // the end of one statement's results
    switch (PQresultStatus(r)) {
      case PGRES_TUPLES_OK:
      case PGRES_COMMAND_OK: rows_.emplace_back(r); break;
      case PGRES_PIPELINE_SYNC:
        PQclear(r);
        if (err_)
          finish_job(std::move(*err_));
        else
          finish_job(std::move(rows_));
        return;
      case PGRES_PIPELINE_ABORTED: PQclear(r); break;
      default:
        if (!err_) err_ = statement_error(r);
        PQclear(r);
        break;
    }
  }
  wait(false);
}

void pg_session::finish_job(pg_batch_result r) {
  job j = std::move(*current_);
  current_.reset();
  rows_.clear();
  if (state_ == state::busy) state_ = state::ready;
  j.done(std::move(r));
  next_job();
}

// At most one wait of each direction is pending; whichever fires runs the
// step the session is at, so a stale wake-up only repeats a harmless step.
void pg_session::wait(bool for_write) {
  bool& pending = for_write ? write_pending_ : read_pending_;
  if (pending || !socket_.is_open()) return;
  pending = true;
  auto kind = for_write ? asio::posix::stream_descriptor::wait_write
                        : asio::posix::stream_descriptor::wait_read;
  socket_.async_wait(kind, [self = shared_from_this(), for_write,
                            gen = socket_gen_](boost::system::error_code ec) {
    if (gen != self->socket_gen_) return;  // for a descriptor since dropped
    (for_write ? self->write_pending_ : self->read_pending_) = false;
    if (ec == asio::error::operation_aborted) return;
    if (ec) {
      self->lost(ec.message());
      return;
    }
    self->step();
  });
}

void pg_session::step() {
  switch (state_) {
    case state::connecting: poll_connect(); return;
    case state::busy:
      if (sending_)
        flush();
      else
        read_results();
      return;
    case state::ready: watch_idle(); return;
    default: return;
  }
}

}  // namespace luad::dispatcher
