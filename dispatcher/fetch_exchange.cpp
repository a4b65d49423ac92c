// One HTTP request's steps on the fetch io thread: take a pooled connection or
// resolve, connect and handshake; write; read with the size cap; follow
// redirects; retry once when a reused connection turns out to be closed. Any
// step may find the exchange already finished (timeout, cancel, stop): it then
// only lets go, and the connection, closed by fail(), is never pooled.
#include <boost/asio/connect.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>

#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cctype>
#include <cstdio>

#include "dispatcher/fetch_impl.hpp"

namespace luad::dispatcher::fetch_detail {

namespace {

bool iequal(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

bool is_redirect(unsigned status) {
  return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

// Methods a client may send twice (RFC 9110 9.2.2): safe to retry on a fresh
// connection when a reused one was closed under us.
bool idempotent(std::string_view method) {
  return method == "GET" || method == "HEAD" || method == "OPTIONS" || method == "PUT" ||
         method == "DELETE" || method == "TRACE";
}

std::string seconds_text(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", s);
  return buf;
}

std::string pool_key(const http_url& url, bool verify) {
  std::string key = url.tls ? "https://" : "http://";
  key += url.authority();
  if (url.tls && !verify) key += " insecure";  // never shared with verifying requests
  return key;
}

// The response map: status, headers (lower-case names; repeats joined with
// ", "), body (moved, not copied) and the final URL.
value response_value(http::response<http::string_body>& res, const std::string& url) {
  value::map headers;
  for (const auto& field : res) {
    std::string name(field.name_string());
    std::transform(name.begin(), name.end(), name.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    auto same = std::find_if(headers.begin(), headers.end(),
                             [&](const auto& h) { return h.first == name; });
    if (same != headers.end()) {
      auto& joined = std::get<std::string>(same->second.data);
      joined += ", ";
      joined += field.value();
    } else {
      headers.emplace_back(std::move(name), std::string(field.value()));
    }
  }
  value::map m;
  m.reserve(4);
  m.emplace_back("status", static_cast<std::int64_t>(res.result_int()));
  m.emplace_back("headers", std::move(headers));
  m.emplace_back("body", std::move(res.body()));
  m.emplace_back("url", url);
  return m;
}

}  // namespace

exchange::exchange(state& s, fetch_request&& req, completion&& done)
    : s_(s), req_(std::move(req)), done_(std::move(done)), deadline_(s.io), connect_timer_(s.io) {
  // On the submitting worker: less work for the io thread.
  key_ = pool_key(req_.url, req_.verify);
  build_message();
}

void exchange::build_message() {
  std::string body = std::move(msg_.body());  // kept across a 307/308 redirect
  if (hops_ == 0) body = std::move(req_.body);
  msg_ = {};
  msg_.version(11);
  msg_.method_string(req_.method);
  msg_.target(req_.url.target);
  bool has_host = false, has_agent = false;
  for (const auto& [name, text] : req_.headers) {
    msg_.insert(name, text);
    has_host |= iequal(name, "host");
    has_agent |= iequal(name, "user-agent");
  }
  if (!has_host) msg_.set(http::field::host, req_.url.host_header());
  if (!has_agent) msg_.set(http::field::user_agent, "luad/0.1");
  msg_.body() = std::move(body);
  msg_.prepare_payload();
  msg_.keep_alive(true);
}

void exchange::arm_deadline() {
  deadline_.expires_after(
      std::chrono::duration_cast<steady::duration>(std::chrono::duration<double>(req_.timeout)));
  deadline_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
    if (ec || self->finished_) return;
    self->fail(error{error_kind::timeout,
                     self->req_.method + " " + self->req_.url.text + " timed out after " +
                         seconds_text(self->req_.timeout) + " s",
                     true,
                     {}});
  });
}

void exchange::start() {
  started_ = true;
  begin_hop();
}

void exchange::begin_hop() {
  if (req_.check_allow && !runtime::allows_http(req_.allow, req_.url.host, req_.url.port)) {
    fail(permission_error(req_.url));
    return;
  }
  if ((conn_ = s_.idle.take(key_))) {
    conn_->reused = true;
    write();
    return;
  }
  connect();
}

void exchange::connect() {
  if (req_.url.tls) {
    conn_ = std::make_unique<connection>(s_.io, s_.tls(), key_);
  } else {
    conn_ = std::make_unique<connection>(s_.io, key_);
  }
  ++s_.opened;
  connecting_ = true;
  connect_timer_.expires_after(std::chrono::duration_cast<steady::duration>(
      std::chrono::duration<double>(req_.connect_timeout)));
  connect_timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
    if (ec || self->finished_ || !self->connecting_) return;
    self->fail(error{error_kind::timeout,
                     "connecting to " + self->req_.url.authority() + " timed out after " +
                         seconds_text(self->req_.connect_timeout) + " s",
                     true,
                     {}});
  });
  boost::system::error_code not_ip;
  auto address = asio::ip::make_address(req_.url.host, not_ip);
  if (!not_ip) {  // an IP literal needs no resolver (and no resolver thread hop)
    conn_->socket().async_connect(
        tcp::endpoint(address, req_.url.port),
        [self = shared_from_this()](const boost::system::error_code& ec) { self->on_connect(ec); });
    return;
  }
  resolver_.emplace(s_.io);
  resolver_->async_resolve(
      req_.url.host, std::to_string(req_.url.port),
      [self = shared_from_this()](const boost::system::error_code& ec,
                                  const tcp::resolver::results_type& found) {
        if (self->finished_) return;
        if (ec) {
          self->fail(self->unavailable("resolving " + self->req_.url.host + ": " + ec.message()));
          return;
        }
        asio::async_connect(self->conn_->socket(), found,
                            [self](const boost::system::error_code& e, const tcp::endpoint&) {
                              self->on_connect(e);
                            });
      });
}

void exchange::on_connect(const boost::system::error_code& ec) {
  if (finished_) return;
  if (ec) {
    refused_ = ec == asio::error::connection_refused;
    fail(unavailable("connecting to " + req_.url.authority() + ": " + ec.message()));
    return;
  }
  boost::system::error_code ignored;
  conn_->socket().set_option(tcp::no_delay(true), ignored);
  if (conn_->secure()) {
    handshake();
    return;
  }
  connecting_ = false;
  connect_timer_.cancel();
  write();
}

void exchange::handshake() {
  ssl::stream<tcp::socket>& tls = *conn_->secure();
  SSL* ssl = tls.native_handle();
  boost::system::error_code not_ip;
  asio::ip::make_address(req_.url.host, not_ip);
  if (not_ip) SSL_set_tlsext_host_name(ssl, req_.url.host.c_str());  // SNI is for names only
  if (req_.verify) {
    tls.set_verify_mode(ssl::verify_peer);
    // OpenSSL checks the name (or IP) during chain verification, so a mismatch
    // reports X509_V_ERR_HOSTNAME_MISMATCH / IP_ADDRESS_MISMATCH.
    if (not_ip) {
      SSL_set1_host(ssl, req_.url.host.c_str());
    } else {
      X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), req_.url.host.c_str());
    }
  } else {
    tls.set_verify_mode(ssl::verify_none);
  }
  tls.async_handshake(
      ssl::stream_base::client,
      [self = shared_from_this()](const boost::system::error_code& ec) { self->on_handshake(ec); });
}

void exchange::on_handshake(const boost::system::error_code& ec) {
  if (finished_) return;
  if (ec) {
    long verdict = SSL_get_verify_result(conn_->secure()->native_handle());
    if (req_.verify && verdict != X509_V_OK) {
      fail(unavailable(
          "TLS handshake with " + req_.url.authority() +
              " failed: certificate verify failed: " + X509_verify_cert_error_string(verdict),
          false));
    } else {
      fail(unavailable("TLS handshake with " + req_.url.authority() + " failed: " + ec.message()));
    }
    return;
  }
  connecting_ = false;
  connect_timer_.cancel();
  write();
}

void exchange::write() {
  conn_->with_stream([this](auto& stream) {
    http::async_write(stream, msg_,
                      [self = shared_from_this()](const boost::system::error_code& ec,
                                                  std::size_t n) { self->on_write(ec, n); });
  });
}

void exchange::on_write(const boost::system::error_code& ec, std::size_t bytes) {
  s_.sent_bytes.fetch_add(bytes, std::memory_order_relaxed);
  if (finished_) return;
  if (ec) {
    if (may_retry()) {
      retry();
    } else {
      fail(unavailable("sending the request to " + req_.url.authority() + ": " + ec.message()));
    }
    return;
  }
  parser_.emplace();
  parser_->body_limit(req_.max_body);
  parser_->header_limit(static_cast<std::uint32_t>(fetch_limits::max_header_bytes));
  if (req_.method == "HEAD") parser_->skip(true);
  conn_->with_stream([this](auto& stream) {
    http::async_read(stream, conn_->buffer, *parser_,
                     [self = shared_from_this()](const boost::system::error_code& e,
                                                 std::size_t n) { self->on_read(e, n); });
  });
}

void exchange::on_read(const boost::system::error_code& ec, std::size_t bytes) {
  s_.received_bytes.fetch_add(bytes, std::memory_order_relaxed);
  if (finished_) return;
  if (ec == http::error::body_limit) {
    fail(error{error_kind::limit,
               "the response body of " + req_.url.text + " is larger than max_body (" +
                   std::to_string(req_.max_body) + " bytes)",
               false,
               {}});
    return;
  }
  if (ec == http::error::header_limit) {
    fail(error{error_kind::limit,
               "the response head of " + req_.url.text + " is larger than 64 KiB",
               false,
               {}});
    return;
  }
  if (ec) {
    bool nothing = !parser_->got_some();
    if (nothing && may_retry()) {
      retry();
    } else if (ec == http::error::partial_message) {
      fail(unavailable(req_.url.authority() +
                       " closed the connection in the middle of the response"));
    } else if (ec == http::error::end_of_stream) {
      fail(unavailable(req_.url.authority() + " closed the connection without a response"));
    } else {
      fail(unavailable("reading the response from " + req_.url.authority() + ": " + ec.message()));
    }
    return;
  }
  bool reusable = parser_->keep_alive() && conn_->buffer.size() == 0;
  if (follow_redirect(reusable)) return;
  unsigned status = parser_->get().result_int();
  value v = response_value(parser_->get(), req_.url.text);
  parser_.reset();
  release_connection(reusable);
  succeed(std::move(v), status);
}

// Starts the next hop when the response is a redirect the request follows;
// false when the response is the answer (or when the request failed here).
bool exchange::follow_redirect(bool reusable) {
  auto& res = parser_->get();
  if (req_.redirects == 0 || !is_redirect(res.result_int())) return false;
  auto location = res.find(http::field::location);
  if (location == res.end()) return false;  // nowhere to go: the 3xx is the answer
  if (hops_ >= req_.redirects) {
    release_connection(reusable);
    fail(error{error_kind::limit,
               "more than " + std::to_string(req_.redirects) + " redirects (the last to " +
                   std::string(location->value().substr(0, 200)) + ")",
               false,
               {}});
    return true;
  }
  http_url next;
  std::string why;
  if (!resolve_location(req_.url, location->value(), next, why)) {
    release_connection(reusable);
    fail(error{error_kind::invalid, why, false, {}});
    return true;
  }
  unsigned status = res.result_int();
  parser_.reset();
  release_connection(reusable);
  // As browsers and most clients do: 303 turns into GET, and so do 301/302
  // after a POST; 307/308 repeat the method and the body.
  if ((status == 303 && req_.method != "HEAD") ||
      ((status == 301 || status == 302) && req_.method == "POST")) {
    req_.method = "GET";
    msg_.body().clear();
    std::erase_if(req_.headers, [](const auto& h) {
      return iequal(h.first, "content-type") || iequal(h.first, "content-encoding");
    });
  }
  if (next.host != req_.url.host || next.port != req_.url.port || next.tls != req_.url.tls) {
    // Credentials for one site are not sent to another.
    std::erase_if(req_.headers, [](const auto& h) {
      return iequal(h.first, "authorization") || iequal(h.first, "cookie") ||
             iequal(h.first, "host");
    });
  }
  req_.url = std::move(next);
  key_ = pool_key(req_.url, req_.verify);
  ++hops_;
  retried_ = false;
  build_message();
  begin_hop();
  return true;
}

bool exchange::may_retry() const { return conn_->reused && !retried_ && idempotent(req_.method); }

void exchange::retry() {
  // The server closed an idle connection as we reused it: one fresh try.
  retried_ = true;
  conn_->close();
  conn_.reset();  // safe: the failed operation was its only one
  parser_.reset();
  connect();
}

void exchange::release_connection(bool reusable) {
  if (!conn_) return;
  if (reusable && s_.accepting) {
    s_.idle.put(std::move(conn_), steady::now());
  } else {
    conn_->close();
    conn_.reset();
  }
}

void exchange::finish() {
  finished_ = true;
  connecting_ = false;
  deadline_.cancel();
  connect_timer_.cancel();
  if (resolver_) resolver_->cancel();
}

void exchange::succeed(value v, unsigned status) {
  auto self = shared_from_this();  // retire() drops the live list's reference
  finish();
  auto o =
      static_cast<std::size_t>(fetch_outcome::status_1xx) + std::clamp(status / 100, 1u, 5u) - 1;
  s_.outcomes[o].fetch_add(1, std::memory_order_relaxed);
  s_.durations.observe(steady::now() - submitted_);
  s_.retire(*this);  // before completing, so counters are settled when the process runs
  done_.succeed(std::move(v));
}

void exchange::fail(error e) {
  if (finished_) return;
  auto self = shared_from_this();
  finish();
  s_.count_failure(e, refused_);
  s_.durations.observe(steady::now() - submitted_);
  // Pending operations on the socket end with operation_aborted; their
  // handlers keep the connection alive until then, and nothing pools it.
  if (conn_) conn_->close();
  s_.retire(*this);
  done_.fail(std::move(e));
}

void exchange::reject(error e) {
  finished_ = true;
  s_.count_failure(e, false);
  done_.fail(std::move(e));
}

error exchange::unavailable(std::string message, bool retryable) const {
  return error{error_kind::unavailable, std::move(message), retryable, {}};
}

}  // namespace luad::dispatcher::fetch_detail
