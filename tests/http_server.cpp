// The test HTTP server: one session per connection, templated on the stream
// (a TCP socket or a TLS stream over one), answering by route.
#include "tests/http_server.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

#include <openssl/evp.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <charconv>
#include <map>
#include <mutex>
#include <stdexcept>
#include <thread>

namespace luad::test {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;

bool iequal(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

int number_after(std::string_view path, std::string_view prefix) {
  int n = 0;
  std::string_view rest = path.substr(prefix.size());
  std::from_chars(rest.data(), rest.data() + rest.size(), n);
  return n;
}

// A self-signed P-256 certificate for IP 127.0.0.1, made in memory.
void use_self_signed_certificate(ssl::context& ctx) {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  X509* cert = X509_new();
  if (!key || !cert) throw std::runtime_error("cannot make a test certificate");
  X509_set_version(cert, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
  X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert), 24 * 3600);
  X509_set_pubkey(cert, key);
  X509_NAME* name = X509_get_subject_name(cert);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("127.0.0.1"), -1, -1, 0);
  X509_set_issuer_name(cert, name);
  X509V3_CTX v3;
  X509V3_set_ctx_nodb(&v3);
  X509V3_set_ctx(&v3, cert, cert, nullptr, nullptr, 0);
  X509_EXTENSION* san = X509V3_EXT_conf_nid(nullptr, &v3, NID_subject_alt_name, "IP:127.0.0.1");
  X509_add_ext(cert, san, -1);
  X509_EXTENSION_free(san);
  X509_sign(cert, key, EVP_sha256());
  SSL_CTX_use_certificate(ctx.native_handle(), cert);
  SSL_CTX_use_PrivateKey(ctx.native_handle(), key);
  X509_free(cert);
  EVP_PKEY_free(key);
}

}  // namespace

struct http_server::impl {
  std::atomic<int> accepted{0}, closed{0}, requests{0}, busy{0}, peak{0};
  mutable std::mutex mu;
  seen last;
  std::map<std::string, int> by_key;  // Idempotency-Key -> requests carrying it
  bool tls = false;
  std::uint16_t port = 0;
  // Declared after the counters: sessions still count as they are destroyed.
  asio::io_context io;
  ssl::context tls_ctx{ssl::context::tls_server};
  tcp::acceptor acceptor{io};
  std::thread thread;

  void accept();
  void record(const http::request<http::string_body>& req) {
    std::lock_guard lock(mu);
    last.method = std::string(req.method_string());
    last.target = std::string(req.target());
    last.body = req.body();
    last.headers.clear();
    for (const auto& f : req)
      last.headers.emplace_back(std::string(f.name_string()), std::string(f.value()));
    if (std::string key = last.header("Idempotency-Key"); !key.empty()) ++by_key[key];
    requests++;
    int now = ++busy;
    for (int p = peak.load(); now > p && !peak.compare_exchange_weak(p, now);) {
    }
  }
};

namespace {

template <class Stream>
class session : public std::enable_shared_from_this<session<Stream>> {
 public:
  session(http_server::impl& server, Stream stream)
      : server_(server), stream_(std::move(stream)), timer_(server.io) {}
  ~session() { server_.closed++; }

  void run() {
    if constexpr (std::is_same_v<Stream, tcp::socket>) {
      read();
    } else {
      stream_.async_handshake(ssl::stream_base::server,
                              [self = this->shared_from_this()](boost::system::error_code ec) {
                                if (!ec) self->read();
                              });
    }
  }

 private:
  tcp::socket& socket() {
    if constexpr (std::is_same_v<Stream, tcp::socket>) {
      return stream_;
    } else {
      return stream_.next_layer();
    }
  }

  void read() {
    req_ = {};
    http::async_read(stream_, buffer_, req_,
                     [self = this->shared_from_this()](boost::system::error_code ec, std::size_t) {
                       if (!ec) self->route();
                     });
  }

  void route() {
    server_.record(req_);
    std::string_view target = req_.target();
    std::string_view path = target.substr(0, target.find('?'));
    std::string_view query =
        target.find('?') == target.npos ? std::string_view() : target.substr(target.find('?') + 1);
    if (path.starts_with("/status/")) {
      int code = number_after(path, "/status/");
      respond(static_cast<unsigned>(code), "status " + std::to_string(code));
    } else if (path == "/echo") {
      respond(200, req_.body());
    } else if (path == "/chunked") {
      write_raw(
          "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
          "5\r\nhello\r\n2\r\n, \r\n7\r\nchunked\r\n6\r\n world\r\n0\r\n\r\n",
          false);
    } else if (path.starts_with("/slow/")) {
      timer_.expires_after(std::chrono::milliseconds(number_after(path, "/slow/")));
      timer_.async_wait([self = this->shared_from_this()](boost::system::error_code ec) {
        if (!ec) self->respond(200, self->req_.body().empty() ? "slow" : self->req_.body());
      });
    } else if (path.starts_with("/big/")) {
      respond(200, std::string(static_cast<std::size_t>(number_after(path, "/big/")), 'x'), {},
              query == "chunked");
    } else if (path == "/truncated") {
      write_raw("HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + std::string(1000, 'y'), true);
    } else if (path == "/hang") {
      read();  // no answer; the read ends when the client goes away
    } else if (path.starts_with("/redirect/")) {
      int n = number_after(path, "/redirect/");
      if (n == 0) {
        respond(200, "landed");
      } else {
        respond(302, "", {{"Location", "/redirect/" + std::to_string(n - 1)}});
      }
    } else if (path.starts_with("/goto/")) {
      respond(static_cast<unsigned>(number_after(path, "/goto/")), "",
              {{"Location", std::string(query)}});
    } else if (path == "/multi") {
      respond(200, "multi", {{"X-Multi", "a"}, {"X-Multi", "b"}});
    } else if (path == "/close") {
      respond(200, "bye", {}, false, true);
    } else {
      respond(200, "ok");
    }
  }

  void respond(unsigned status, std::string body,
               std::vector<std::pair<std::string, std::string>> headers = {}, bool chunked = false,
               bool close_after = false) {
    auto res = std::make_shared<http::response<http::string_body>>(
        static_cast<http::status>(status), 11, std::move(body));
    for (auto& [name, text] : headers) res->insert(name, text);
    res->keep_alive(req_.keep_alive());
    if (chunked) {
      res->chunked(true);
    } else {
      res->prepare_payload();
    }
    http::async_write(stream_, *res,
                      [self = this->shared_from_this(), res, close_after](
                          boost::system::error_code ec, std::size_t) {
                        self->server_.busy--;
                        if (ec) return;
                        if (close_after || !res->keep_alive()) {
                          self->close();
                        } else {
                          self->read();
                        }
                      });
  }

  void write_raw(std::string text, bool close_after) {
    raw_ = std::move(text);
    asio::async_write(
        stream_, asio::buffer(raw_),
        [self = this->shared_from_this(), close_after](boost::system::error_code ec, std::size_t) {
          self->server_.busy--;
          if (ec) return;
          if (close_after) {
            self->close();
          } else {
            self->read();
          }
        });
  }

  void close() {
    boost::system::error_code ignored;
    socket().shutdown(tcp::socket::shutdown_both, ignored);
    socket().close(ignored);
  }

  http_server::impl& server_;
  Stream stream_;
  asio::steady_timer timer_;
  beast::flat_buffer buffer_;
  http::request<http::string_body> req_;
  std::string raw_;
};

}  // namespace

void http_server::impl::accept() {
  acceptor.async_accept([this](boost::system::error_code ec, tcp::socket socket) {
    if (ec) return;  // the acceptor closed
    accepted++;
    if (tls) {
      std::make_shared<session<ssl::stream<tcp::socket>>>(
          *this, ssl::stream<tcp::socket>(std::move(socket), tls_ctx))
          ->run();
    } else {
      std::make_shared<session<tcp::socket>>(*this, std::move(socket))->run();
    }
    accept();
  });
}

std::string http_server::seen::header(std::string_view name) const {
  for (const auto& [key, text] : headers)
    if (iequal(key, name)) return text;
  return {};
}

http_server::http_server(bool tls) : impl_(std::make_unique<impl>()) {
  impl_->tls = tls;
  if (tls) use_self_signed_certificate(impl_->tls_ctx);
  tcp::endpoint at(asio::ip::make_address("127.0.0.1"), 0);
  impl_->acceptor.open(at.protocol());
  impl_->acceptor.set_option(tcp::acceptor::reuse_address(true));
  impl_->acceptor.bind(at);
  impl_->acceptor.listen(asio::socket_base::max_listen_connections);
  impl_->port = impl_->acceptor.local_endpoint().port();
  impl_->accept();
  impl_->thread = std::thread([this] { impl_->io.run(); });
}

http_server::~http_server() {
  impl_->io.stop();
  impl_->thread.join();
}

std::uint16_t http_server::port() const { return impl_->port; }

std::string http_server::url(std::string_view path) const {
  return std::string(impl_->tls ? "https" : "http") + "://127.0.0.1:" + std::to_string(port()) +
         std::string(path);
}

std::string http_server::permission() const { return "http:127.0.0.1:" + std::to_string(port()); }

int http_server::accepted() const { return impl_->accepted.load(); }
int http_server::closed() const { return impl_->closed.load(); }
int http_server::requests() const { return impl_->requests.load(); }
int http_server::peak_busy() const { return impl_->peak.load(); }

std::map<std::string, int> http_server::idempotency_keys() const {
  std::lock_guard lock(impl_->mu);
  return impl_->by_key;
}

http_server::seen http_server::last() const {
  std::lock_guard lock(impl_->mu);
  return impl_->last;
}

}  // namespace luad::test
