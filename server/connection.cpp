// One client of the daemon's socket (connection.hpp).
#include "server/connection.hpp"

#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <algorithm>
#include <utility>

#include "proto/json_rpc.hpp"
#include "runtime/logging.hpp"
#include "server/methods.hpp"

namespace luad::server {

namespace asio = boost::asio;
namespace json = boost::json;

namespace {

// "30" or "0.25": a number of seconds as people write it.
std::string seconds_text(double s) {
  std::string t = std::to_string(s);
  t.erase(t.find_last_not_of('0') + 1);
  if (t.back() == '.') t.pop_back();
  return t;
}

}  // namespace

connection::connection(services& s, socket sock, server::peer p)
    : s_(s), sock_(std::move(sock)), peer_(p), timer_(sock_.get_executor()) {}

std::optional<server::peer> connection::credentials(socket& sock) {
  ucred cred{};
  socklen_t len = sizeof cred;
  if (getsockopt(sock.native_handle(), SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0)
    return std::nullopt;
  return server::peer{cred.uid, cred.gid};
}

void connection::start() {
  if (runtime::status ok = may_connect(s_.cfg.server, peer_); !ok) {
    runtime::logger().warn("refused a client with uid {} gid {}", peer_.uid, peer_.gid);
    send(proto::error_reply(nullptr, proto::error_code::denied, ok.error().message));
    close_after_write();
    return;
  }
  last_activity_ = clock::now();
  schedule(last_activity_ + config_seconds(s_.cfg.limits.idle_timeout));
  read();
}

void connection::read() {
  if (reading_ || closed_ || taking_) return;
  if (!take_lines()) return;
  reading_ = true;
  std::size_t had = in_.size();
  in_.resize(had + read_chunk);  // read straight into the buffer's tail
  sock_.async_read_some(
      asio::buffer(in_.data() + had, read_chunk),
      [self = shared_from_this(), had](boost::system::error_code ec, std::size_t n) {
        self->reading_ = false;
        self->in_.resize(had + (ec ? 0 : n));
        if (ec) {
          if (ec != asio::error::eof && ec != asio::error::operation_aborted)
            runtime::logger().debug("connection closed while reading: {}", ec.message());
          self->close();
          return;
        }
        self->last_activity_ = clock::now();
        self->read();
      });
}

bool connection::take_lines() {
  taking_ = true;
  const std::size_t max_line = s_.cfg.limits.max_request_bytes;
  std::size_t start = 0;
  bool go_on = true;
  for (;;) {
    if (closed_) {
      go_on = false;
      break;
    }
    if (pending_bytes_ > max_pending_bytes || in_flight_ >= max_in_flight) {
      // Paused: no read and maybe no write holds the connection now, and
      // waiters only hold weak references. Keep it until reading resumes.
      paused_self_ = shared_from_this();
      go_on = false;
      break;
    }
    std::size_t nl = in_.find('\n', std::max(start, scanned_));
    if (nl == std::string::npos || nl - start > max_line) {
      scanned_ = nl == std::string::npos ? in_.size() : nl;
      break;
    }
    std::string line = in_.substr(start, nl - start);
    start = nl + 1;
    handle(line);
  }
  in_.erase(0, start);
  scanned_ = scanned_ > start ? scanned_ - start : 0;
  taking_ = false;
  if (!go_on) return false;
  if (in_.size() > max_line) {  // a line past the size limit, with or without its '\n'
    send(proto::error_reply(nullptr, proto::error_code::invalid_request,
                            "request line longer than " + std::to_string(max_line) + " bytes"));
    close_after_write();
    return false;
  }
  if (in_.empty()) {
    line_started_.reset();
    if (in_.capacity() > (std::size_t{1} << 20)) std::string().swap(in_);  // after a big line
  } else if (!line_started_) {
    line_started_ = clock::now();
    schedule(*line_started_ + config_seconds(s_.cfg.limits.request_timeout));
  }
  auto keep = std::move(paused_self_);  // reading resumes: the read owns it now
  return true;
}

void connection::handle(const std::string& line) {
  if (proto::is_blank(line)) return;  // blank lines are fine
  auto parsed = proto::parse_request(line);
  if (auto* bad = std::get_if<proto::request_error>(&parsed)) {
    send(proto::error_reply(bad->id, bad->code, bad->message));
    return;
  }
  const proto::request& req = std::get<proto::request>(parsed);
  std::optional<json::object> reply = dispatch(s_, *this, req);
  if (reply) {
    note_reply(req, *reply);
    send(*reply);
  } else {
    ++in_flight_;  // answered by finish_deferred
  }
}

// A subscription ends with its `exit` notification (see notify) or an
// unsubscribe; until then the connection is waiting, not idle.
void connection::note_reply(const proto::request& req, const json::object& reply) {
  if (req.method != "subscribe" && req.method != "unsubscribe") return;
  const json::value* result = reply.if_contains("result");
  if (!result) return;
  if (req.method == "unsubscribe") {
    // Keyed as the subscribe reply spelled the pid, whatever form was sent.
    if (const json::value* pid = req.params.if_contains("pid"); pid && pid->is_string())
      if (auto id = runtime::pid::parse(pid->get_string())) subscribed_.erase(id->to_string());
    return;
  }
  const json::object* r = result->if_object();
  const json::value* pid = r ? r->if_contains("pid") : nullptr;
  const json::value* on = r ? r->if_contains("subscribed") : nullptr;
  if (pid && pid->is_string() && on && on->is_bool() && on->get_bool())
    subscribed_.emplace(pid->get_string());
}

void connection::finish_deferred(const json::value& id, const runtime::result<json::value>& r) {
  --in_flight_;
  send(r ? proto::result_reply(id, *r) : proto::error_reply(id, r.error()));
  read();  // may have been paused at max_in_flight
}

// Log lines for a client that does not read are dropped, not buffered
// without bound; the next line that fits is preceded by a count of them.
void connection::notify(const char* method, const json::value& params, bool droppable) {
  if (closed_) return;
  const json::value* pid = params.is_object() ? params.get_object().if_contains("pid") : nullptr;
  std::string about = pid && pid->is_string() ? std::string(pid->get_string()) : std::string();
  if (std::string_view(method) == "exit") subscribed_.erase(about);
  // A line a worker posted just before the unsubscribe was answered: once
  // the client has read `true`, nothing more of that process reaches it.
  if (std::string_view(method) == "log" && !subscribed_.contains(about)) return;
  if (droppable && pending_bytes_ > max_pending_bytes) {
    ++dropped_;
    return;
  }
  if (dropped_ > 0) {
    send(proto::notification("dropped", json::object{{"lines", dropped_}}));
    dropped_ = 0;
  }
  send(proto::notification(method, params));
}

void connection::send(const json::value& reply) {
  std::string text = proto::frame(reply);
  pending_bytes_ += text.size();
  out_.push_back(std::move(text));
  last_activity_ = clock::now();
  write();
}

void connection::write() {
  if (writing_ || out_.empty() || !sock_.is_open()) return;
  writing_ = true;
  asio::async_write(sock_, asio::buffer(out_.front()),
                    [self = shared_from_this()](boost::system::error_code ec, std::size_t) {
                      self->writing_ = false;
                      self->pending_bytes_ -= self->out_.front().size();
                      self->out_.pop_front();
                      if (ec) {
                        runtime::logger().debug("connection closed while writing: {}",
                                                ec.message());
                        self->close();
                        return;
                      }
                      if (self->out_.empty() && self->closed_) {
                        self->close();
                        return;
                      }
                      self->write();
                      self->read();  // resumes reading once replies drained
                    });
}

void connection::schedule(clock::time_point when) {
  if (closed_ || (timer_armed_ && timer_.expiry() <= when)) return;
  timer_armed_ = true;
  timer_.expires_at(when);  // (cancels the wait before, whose handler then does nothing)
  timer_.async_wait([weak = weak_from_this()](boost::system::error_code ec) {
    auto self = weak.lock();
    if (ec || !self) return;
    self->timer_armed_ = false;
    self->check_deadlines();
  });
}

void connection::check_deadlines() {
  if (closed_) return;
  const limits_config& lim = s_.cfg.limits;
  clock::time_point now = clock::now();
  if (line_started_ && now >= *line_started_ + config_seconds(lim.request_timeout)) {
    runtime::logger().debug("closing a connection (uid {}): request line not completed", peer_.uid);
    send(proto::error_reply(nullptr, proto::error_code::invalid_request,
                            "request line not completed within " +
                                seconds_text(lim.request_timeout) + " s (request_timeout)"));
    close_after_write();
    return;
  }
  if (idle() && now >= last_activity_ + config_seconds(lim.idle_timeout)) {
    runtime::logger().debug("closing an idle connection (uid {})", peer_.uid);
    send(proto::error_reply(
        nullptr, proto::error_code::failed,
        "connection closed: idle for " + seconds_text(lim.idle_timeout) + " s (idle_timeout)"));
    close_after_write();
    return;
  }
  if (line_started_)
    schedule(*line_started_ + config_seconds(lim.request_timeout));
  else
    schedule((idle() ? last_activity_ : now) + config_seconds(lim.idle_timeout));
}

void connection::close_after_write() {
  closed_ = true;
  timer_armed_ = true;
  timer_.expires_after(std::chrono::seconds(5));
  timer_.async_wait([weak = weak_from_this()](boost::system::error_code ec) {
    if (auto self = weak.lock(); self && !ec) self->close();
  });
}

void connection::close() {
  auto keep = std::move(paused_self_);  // (released last: it may be the last owner)
  closed_ = true;
  boost::system::error_code ignored;
  timer_.cancel();
  timer_armed_ = false;
  sock_.close(ignored);
}

}  // namespace luad::server
