// The fetch dispatcher's shell: submit and admission, the concurrency cap and
// its FIFO queue, the sweep for abandoned requests and old idle connections,
// the keep-alive pool, start and stop. One request's steps are in
// fetch_exchange.cpp.
#include "dispatcher/fetch.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>

#include <sys/socket.h>

#include <cerrno>
#include <future>

#include "dispatcher/fetch_impl.hpp"

namespace luad::dispatcher {

namespace fetch_detail {

// --- connections and the idle pool ---------------------------------------------

connection::connection(asio::io_context& io, std::string pool_key)
    : key(std::move(pool_key)), plain_(std::in_place, io) {}

connection::connection(asio::io_context& io, ssl::context& tls, std::string pool_key)
    : key(std::move(pool_key)), secure_(std::in_place, io, tls) {}

void connection::close() noexcept {
  boost::system::error_code ignored;
  socket().shutdown(tcp::socket::shutdown_both, ignored);
  socket().close(ignored);
}

bool connection::looks_alive() noexcept {
  if (!socket().is_open()) return false;
  char byte;
  ssize_t n = ::recv(socket().native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

std::unique_ptr<connection> pool::take(const std::string& key) {
  auto it = idle_.find(key);
  if (it == idle_.end()) return nullptr;
  std::unique_ptr<connection> found;
  auto& q = it->second;
  while (!q.empty() && !found) {
    std::unique_ptr<connection> c = std::move(q.back());
    q.pop_back();
    --count_;
    if (c->looks_alive()) {
      found = std::move(c);
    } else {
      c->close();
    }
  }
  if (q.empty()) idle_.erase(it);
  return found;
}

void pool::put(std::unique_ptr<connection> c, steady::time_point now) {
  c->idle_since = now;
  auto& q = idle_[c->key];
  q.push_back(std::move(c));
  ++count_;
  if (q.size() > max_per_key_) {
    q.front()->close();
    q.pop_front();
    --count_;
  }
}

void pool::expire(steady::time_point cutoff) {
  for (auto it = idle_.begin(); it != idle_.end();) {
    auto& q = it->second;
    while (!q.empty() && q.front()->idle_since < cutoff) {  // oldest first
      q.front()->close();
      q.pop_front();
      --count_;
    }
    it = q.empty() ? idle_.erase(it) : std::next(it);
  }
}

void pool::clear() {
  for (auto& [key, q] : idle_)
    for (auto& c : q) c->close();
  idle_.clear();
  count_ = 0;
}

// --- admission, the cap, the sweep ------------------------------------------------

namespace {

// Completes a request whose process was killed or ended; nobody reads it.
error nobody_waits() {
  return error{error_kind::canceled, "nobody waits for the response any more", false, {}};
}

}  // namespace

state::state(const fetch::options& o) : opts(o), idle(o.max_idle_per_host), sweep(io) {
  tls_.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                   ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
}

ssl::context& state::tls() {
  if (!tls_ready_) {
    tls_ready_ = true;
    boost::system::error_code ec;
    tls_.set_default_verify_paths(ec);  // the system CA store; without it, verification fails
  }
  return tls_;
}

void state::count_failure(const error& e, bool refused) {
  fetch_outcome o = fetch_outcome::unavailable;
  switch (e.kind) {
    case error_kind::timeout: o = fetch_outcome::timeout; break;
    case error_kind::limit: o = fetch_outcome::limit; break;
    case error_kind::permission_denied: o = fetch_outcome::denied; break;
    case error_kind::invalid: o = fetch_outcome::invalid; break;
    case error_kind::canceled: o = fetch_outcome::canceled; break;
    default: o = refused ? fetch_outcome::refused : fetch_outcome::unavailable;
  }
  outcomes[static_cast<std::size_t>(o)].fetch_add(1, std::memory_order_relaxed);
}

void state::publish() {
  in_flight_seen.store(running, std::memory_order_relaxed);
  queued_seen.store(queued, std::memory_order_relaxed);
  idle_seen.store(idle.size(), std::memory_order_relaxed);
  opened_seen.store(opened, std::memory_order_relaxed);
  completed_seen.store(completed, std::memory_order_relaxed);
}

void state::admit(std::shared_ptr<exchange> ex) {
  if (!accepting) {
    ex->reject(error{error_kind::canceled, "the fetch dispatcher stopped", false, {}});
    return;
  }
  live.push_back(ex);
  ex->live_pos = std::prev(live.end());
  ex->arm_deadline();
  if (running < opts.max_in_flight) {
    ++running;
    ex->start();
  } else {
    waiting.push_back(std::move(ex));
    ++queued;
  }
  arm_sweep();
  publish();
}

void state::retire(exchange& ex) {
  live.erase(ex.live_pos);
  ++completed;
  if (ex.started()) {
    --running;
  } else {
    --queued;  // still in `waiting`; skipped when its turn comes
  }
  if (!draining) {  // a start that fails at once re-enters here: the outer loop goes on
    draining = true;
    while (accepting && running < opts.max_in_flight && !waiting.empty()) {
      std::shared_ptr<exchange> next = std::move(waiting.front());
      waiting.pop_front();
      if (next->finished()) continue;
      if (next->abandoned()) {  // its process is gone: never connect for it
        next->fail(nobody_waits());
        continue;
      }
      --queued;
      ++running;
      next->start();
    }
    draining = false;
  }
  publish();
}

void state::arm_sweep() {
  if (!accepting) return;
  std::chrono::milliseconds period;
  if (!live.empty()) {
    period = opts.poll_interval;
  } else if (idle.size() != 0) {
    period = std::min(opts.idle_timeout, std::chrono::milliseconds(1000));
  } else {
    return;  // nothing to watch; the next admit arms it
  }
  steady::time_point due = steady::now() + period;
  if (sweep_due <= due) return;  // an earlier sweep is armed already
  sweep_due = due;
  sweep.expires_at(due);  // aborts a later wait, whose handler then does nothing
  sweep.async_wait([this](const boost::system::error_code& ec) {
    if (ec == asio::error::operation_aborted) return;
    sweep_due = steady::time_point::max();
    sweep_now();
  });
}

void state::sweep_now() {
  if (!accepting) return;
  for (auto it = live.begin(); it != live.end();) {
    std::shared_ptr<exchange> ex = *it++;  // fail() erases ex's node, not the next
    if (ex->abandoned()) {
      ex->fail(nobody_waits());
    }
  }
  idle.expire(steady::now() - opts.idle_timeout);
  publish();
  arm_sweep();
}

void state::shutdown() {
  accepting = false;
  waiting.clear();
  std::vector<std::shared_ptr<exchange>> all(live.begin(), live.end());
  for (auto& ex : all)
    ex->fail(error{error_kind::canceled, "the fetch dispatcher stopped", false, {}});
  idle.clear();
  sweep.cancel();
  sweep_due = steady::time_point::max();
  publish();
}

}  // namespace fetch_detail

// --- the dispatcher ----------------------------------------------------------------

fetch::fetch() : fetch(options{}) {}

fetch::fetch(options opts) : state_(std::make_unique<fetch_detail::state>(opts)) {}

fetch::~fetch() { stop(); }

void fetch::start() {
  fetch_detail::state& s = *state_;
  std::lock_guard lock(s.mu);
  if (s.started) return;
  s.started = true;
  s.io.restart();
  boost::asio::post(s.io, [&s] { s.accepting = true; });
  s.thread = std::thread([&s] {
    auto guard = boost::asio::make_work_guard(s.io);
    s.io.run();
  });
  s.open.store(true);
}

void fetch::stop() {
  fetch_detail::state& s = *state_;
  {
    std::lock_guard lock(s.mu);
    if (!s.started) return;
    s.started = false;
  }
  // Sequentially consistent with submit's increment-then-check: a submit that
  // saw `open` has posted its request before the shutdown below is posted.
  s.open.store(false);
  while (s.submitting.load() != 0) std::this_thread::yield();
  std::promise<void> done;
  boost::asio::post(s.io, [&s, &done] {
    s.shutdown();
    done.set_value();
  });
  done.get_future().wait();
  // Handlers still queued belong to finished requests (aborted reads, timers);
  // they are dropped with the io_context or run harmlessly after a restart.
  s.io.stop();
  if (s.thread.joinable()) s.thread.join();
}

void fetch::submit(command&& cmd, completion&& done) {
  fetch_request req;
  error err;
  fetch_detail::state& s = *state_;
  if (!parse_fetch_request(std::move(cmd.args), req, err)) {
    s.count_failure(err, false);
    done.fail(std::move(err));
    return;
  }
  auto ex = std::make_shared<fetch_detail::exchange>(s, std::move(req), std::move(done));
  s.submitting.fetch_add(1);
  if (!s.open.load()) {
    s.submitting.fetch_sub(1);
    ex->reject(error{error_kind::unavailable, "the fetch dispatcher is not running", true, {}});
    return;
  }
  boost::asio::post(s.io, [&s, ex = std::move(ex)]() mutable { s.admit(std::move(ex)); });
  s.submitting.fetch_sub(1);
}

fetch::stats fetch::snapshot() const {
  const fetch_detail::state& s = *state_;
  stats out{s.in_flight_seen.load(std::memory_order_relaxed),
            s.queued_seen.load(std::memory_order_relaxed),
            s.idle_seen.load(std::memory_order_relaxed),
            s.opened_seen.load(std::memory_order_relaxed),
            s.completed_seen.load(std::memory_order_relaxed)};
  for (std::size_t i = 0; i < k_fetch_outcomes; ++i)
    out.outcomes[i] = s.outcomes[i].load(std::memory_order_relaxed);
  out.sent_bytes = s.sent_bytes.load(std::memory_order_relaxed);
  out.received_bytes = s.received_bytes.load(std::memory_order_relaxed);
  return out;
}

const runtime::histogram& fetch::durations() const { return state_->durations; }

std::string_view fetch_outcome_name(fetch_outcome o) {
  static constexpr std::string_view names[] = {"1xx",   "2xx",     "3xx",     "4xx",
                                               "5xx",   "timeout", "refused", "unavailable",
                                               "limit", "denied",  "invalid", "canceled"};
  static_assert(std::size(names) == k_fetch_outcomes &&
                static_cast<std::size_t>(fetch_outcome::canceled) + 1 == k_fetch_outcomes);
  return names[static_cast<std::size_t>(o)];
}

}  // namespace luad::dispatcher
