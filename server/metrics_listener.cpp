// The metrics endpoint (metrics_listener.hpp): the acceptor, the connection
// cap, and one session per connection reading request heads and writing
// answers until its deadline, an error, or a request that ends it.
#include "server/metrics_listener.hpp"

#include <spdlog/spdlog.h>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

#include <array>
#include <optional>
#include <stdexcept>

#include "runtime/logging.hpp"
#include "server/metrics.hpp"

namespace luad::server {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;

namespace {

// After an answer that ends the connection, how long the session still reads
// (and drops) what the client sends, so that closing with unread bytes does
// not reset the connection before the client has read the answer.
constexpr std::chrono::milliseconds k_linger{1000};
constexpr std::size_t k_linger_bytes = 64 << 10;

}  // namespace

class metrics_listener::session : public std::enable_shared_from_this<session> {
 public:
  session(tcp::socket s, const metrics_listener& owner)
      : socket_(std::move(s)),
        exposition_(owner.exposition_),
        limits_(owner.limits_),
        buffer_(owner.limits_.max_head_bytes),
        deadline_(socket_.get_executor()) {}

  void start() { next_request(); }

  void close() noexcept {
    error_code ignored;
    closed_ = true;
    try {
      deadline_.cancel();  // (throws only if the reactor fails; the close below ends it anyway)
    } catch (const boost::system::system_error&) {
    }
    socket_.close(ignored);
  }
  bool closed() const { return closed_; }
  /// Waiting for a request head or lingering after its last answer (not
  /// answering one), since when: such a connection may make room.
  bool waiting() const { return waiting_ && !closed_; }
  /// Closing after its answer: the client has all it asked for.
  bool lingering() const { return lingering_ && !closed_; }
  std::chrono::steady_clock::time_point waiting_since() const { return since_; }

 private:
  // The deadline of what comes next: a request (head and answer), or the linger.
  void arm(std::chrono::milliseconds within) {
    deadline_.expires_after(within);
    deadline_.async_wait([weak = weak_from_this()](const error_code& ec) {
      if (ec) return;  // re-armed or closed
      if (auto self = weak.lock()) self->close();
    });
  }

  void next_request() {
    arm(limits_.timeout);
    waiting_ = true;
    since_ = std::chrono::steady_clock::now();
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(limits_.max_head_bytes));
    http::async_read_header(
        socket_, buffer_, *parser_,
        [self = shared_from_this()](const error_code& ec, std::size_t) { self->on_head(ec); });
  }

  void on_head(const error_code& ec) {
    waiting_ = false;
    if (ec == http::error::header_limit || ec == http::error::buffer_overflow) {
      answer(http::status::request_header_fields_too_large, "request head too large\n", false);
      return;
    }
    bool parse_error = ec &&
                       ec.category() == http::make_error_code(http::error::bad_method).category() &&
                       ec != http::error::end_of_stream && ec != http::error::partial_message;
    if (parse_error) {
      answer(http::status::bad_request, "bad request\n", false);
      return;
    }
    if (ec) {  // the client left, or the deadline closed the socket
      close();
      return;
    }
    const auto& req = parser_->get();
    version_ = req.version() == 10 ? 10 : 11;
    // A body is never read: a request that has one is answered, then ends.
    bool keep = req.keep_alive() && parser_->is_done();
    std::string_view target = req.target();
    std::string_view path = target.substr(0, target.find('?'));
    if (req.method() != http::verb::get) {
      answer(http::status::method_not_allowed, "only GET is served\n", keep);
    } else if (path != "/metrics") {
      answer(http::status::not_found, "not found: the metrics are at /metrics\n", keep);
    } else {
      answer(http::status::ok, exposition_(), keep);
    }
  }

  void answer(http::status status, std::string body, bool keep) {
    res_ = {};
    res_.version(version_);
    res_.result(status);
    res_.set(http::field::server, "luad");
    res_.set(http::field::content_type,
             status == http::status::ok ? prometheus_content_type : "text/plain; charset=utf-8");
    if (status == http::status::method_not_allowed) res_.set(http::field::allow, "GET");
    res_.body() = std::move(body);
    res_.keep_alive(keep);
    res_.prepare_payload();
    http::async_write(socket_, res_,
                      [self = shared_from_this(), keep](const error_code& ec, std::size_t) {
                        if (ec) {
                          self->close();
                        } else if (keep) {
                          self->next_request();
                        } else {
                          self->linger();
                        }
                      });
  }

  // The answer is out and the connection ends: send FIN, then drop what the
  // client still sends until it closes, k_linger passes or k_linger_bytes came.
  void linger() {
    error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_send, ignored);
    arm(k_linger);
    waiting_ = true;
    lingering_ = true;
    since_ = std::chrono::steady_clock::now();
    drained_ = 0;
    drain();
  }

  void drain() {
    socket_.async_read_some(asio::buffer(scratch_),
                            [self = shared_from_this()](const error_code& ec, std::size_t n) {
                              self->drained_ += n;
                              if (ec || self->drained_ >= k_linger_bytes) {
                                self->close();
                              } else {
                                self->drain();
                              }
                            });
  }

  tcp::socket socket_;
  std::function<std::string()> exposition_;
  limits limits_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::empty_body>> parser_;
  http::response<http::string_body> res_;
  asio::steady_timer deadline_;
  std::array<char, 4096> scratch_{};
  std::size_t drained_ = 0;
  unsigned version_ = 11;  // HTTP/1.0 clients are answered in 1.0
  bool closed_ = false;
  bool waiting_ = false;
  bool lingering_ = false;
  std::chrono::steady_clock::time_point since_;
};

metrics_listener::metrics_listener(asio::io_context& io, std::function<std::string()> exposition,
                                   limits l)
    : exposition_(std::move(exposition)), limits_(l), acceptor_(io) {}

metrics_listener::~metrics_listener() { stop(); }

void metrics_listener::start(const std::string& address, std::uint16_t port) {
  error_code ec;
  asio::ip::address ip = asio::ip::make_address(address, ec);
  tcp::endpoint where(ip, port);
  if (!ec) acceptor_.open(where.protocol(), ec);
  if (!ec) acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor_.bind(where, ec);
  if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  std::string shown = ip.is_v6() ? "[" + address + "]" : address;
  if (ec) {
    error_code ignored;
    acceptor_.close(ignored);
    throw std::runtime_error("metrics: cannot listen on " + shown + ":" + std::to_string(port) +
                             " ([metrics] listen): " + ec.message());
  }
  port_ = acceptor_.local_endpoint(ec).port();
  runtime::logger().info("metrics: serving GET /metrics on http://{}:{}/metrics", shown, port_);
  accept();
}

void metrics_listener::accept() {
  acceptor_.async_accept([this](const error_code& ec, tcp::socket s) {
    if (ec == asio::error::operation_aborted || stopped_) return;
    if (!ec) admit(std::move(s));
    accept();  // (an error such as EMFILE: try again with the next)
  });
}

// At the cap, a connection closing after its answer makes room, else the one
// that has waited longest for a request head; when none waits, `s` is
// refused. Lingering ones go first: under a flood of clients that are
// answered and come straight back, the oldest waiter could otherwise be a
// scraper whose request had not been read yet (a scrape failed so, 1 in 30,
// in hostile/metrics_test's flood of oversized heads).
void metrics_listener::admit(tcp::socket s) {
  if (connections() >= limits_.max_connections) {
    std::shared_ptr<session> oldest;
    for (const bool answered : {true, false}) {
      for (const auto& w : sessions_) {
        auto c = w.lock();
        if (c && c->waiting() && (!answered || c->lingering()) &&
            (!oldest || c->waiting_since() < oldest->waiting_since()))
          oldest = std::move(c);
      }
      if (oldest) break;
    }
    if (!oldest) {
      refuse(std::move(s));
      return;
    }
    oldest->close();
  }
  auto c = std::make_shared<session>(std::move(s), *this);
  sessions_.push_back(c);
  c->start();
}

// A connection with no room: a 503 into its empty send buffer (never
// blocks), then closed.
void metrics_listener::refuse(tcp::socket s) {
  static constexpr std::string_view busy =
      "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
      "Content-Length: 21\r\nConnection: close\r\n\r\ntoo many connections\n";
  error_code ignored;
  s.non_blocking(true, ignored);
  s.write_some(asio::buffer(busy), ignored);
  s.shutdown(tcp::socket::shutdown_send, ignored);
  s.close(ignored);
}

std::size_t metrics_listener::connections() {
  std::erase_if(sessions_, [](const auto& w) {
    auto c = w.lock();
    return !c || c->closed();
  });
  return sessions_.size();
}

void metrics_listener::stop() noexcept {
  stopped_ = true;
  error_code ignored;
  acceptor_.close(ignored);
  for (auto& w : sessions_)
    if (auto c = w.lock()) c->close();
  sessions_.clear();
}

}  // namespace luad::server
