// One client of the daemon's socket (connection.hpp).
#include "server/connection.hpp"

#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <utility>

#include "proto/json_rpc.hpp"
#include "runtime/logging.hpp"
#include "server/methods.hpp"

namespace luad::server {

namespace asio = boost::asio;
namespace json = boost::json;

void connection::start() {
  ucred cred{};
  socklen_t len = sizeof cred;
  if (getsockopt(sock_.native_handle(), SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
    close();
    return;
  }
  peer_ = {cred.uid, cred.gid};
  if (runtime::status ok = may_connect(s_.cfg.server, peer_); !ok) {
    runtime::logger().warn("refused a client with uid {} gid {}", peer_.uid, peer_.gid);
    send(proto::error_reply(nullptr, proto::error_code::denied, ok.error().message));
    close_after_write();
    return;
  }
  read();
}

void connection::read() {
  if (reading_ || closed_) return;
  if (pending_bytes_ > max_pending_bytes || in_flight_ >= max_in_flight) {
    // Paused: no read and maybe no write holds the connection now, and
    // waiters only hold weak references. Keep it until reading resumes.
    paused_self_ = shared_from_this();
    return;
  }
  auto keep = std::move(paused_self_);
  reading_ = true;
  std::size_t max_line = s_.cfg.limits.max_request_bytes;
  asio::async_read_until(
      sock_, asio::dynamic_buffer(in_, max_line + 1), '\n',
      [self = shared_from_this(), max_line](boost::system::error_code ec, std::size_t n) {
        self->reading_ = false;
        if (ec == asio::error::not_found) {  // the line passed the size limit
          self->send(proto::error_reply(
              nullptr, proto::error_code::invalid_request,
              "request line longer than " + std::to_string(max_line) + " bytes"));
          self->close_after_write();
          return;
        }
        if (ec) {
          if (ec != asio::error::eof && ec != asio::error::operation_aborted)
            runtime::logger().debug("connection closed while reading: {}", ec.message());
          self->close();
          return;
        }
        std::string line = self->in_.substr(0, n - 1);
        self->in_.erase(0, n);
        self->handle(line);
        self->read();
      });
}

void connection::handle(const std::string& line) {
  if (proto::is_blank(line)) return;  // blank lines are fine
  auto parsed = proto::parse_request(line);
  if (auto* bad = std::get_if<proto::request_error>(&parsed)) {
    send(proto::error_reply(bad->id, bad->code, bad->message));
    return;
  }
  std::optional<json::object> reply = dispatch(s_, *this, std::get<proto::request>(parsed));
  if (reply) {
    send(*reply);
  } else {
    ++in_flight_;  // answered by finish_deferred
  }
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

void connection::close() {
  auto keep = std::move(paused_self_);  // (released last: it may be the last owner)
  closed_ = true;
  boost::system::error_code ignored;
  sock_.close(ignored);
}

}  // namespace luad::server
