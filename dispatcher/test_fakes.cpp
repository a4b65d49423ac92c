// luad test's fakes (test_fakes.hpp): the virtual clock, faked HTTP, and the
// relay that counts the real commands still in flight.
#include "dispatcher/test_fakes.hpp"

#include <chrono>
#include <cmath>
#include <utility>

#include "dispatcher/fetch_request.hpp"

namespace luad::dispatcher {

namespace {

// Whole 1/1024ths of a second: a start with few significant bits, so that
// start + n - start is exactly n for the deadlines tests use (a raw steady
// clock reading plus 3600 could round, and `t1 - t0 == 3600` fail).
double seconds_of(std::chrono::nanoseconds d) {
  return std::floor(std::chrono::duration<double>(d).count() * 1024) / 1024;
}

error failure(error_kind kind, std::string message) {
  return error{kind, std::move(message), false, {}};
}

// Does `rule` answer a request for `method` `url`?
bool matches(const http_fake& rule, const std::string& method, const std::string& url) {
  if (rule.times == 0) return false;
  if (!rule.method.empty() && rule.method != method) return false;
  if (!rule.url.empty() && rule.url.back() == '*')
    return url.compare(0, rule.url.size() - 1, rule.url, 0, rule.url.size() - 1) == 0;
  return rule.url == url;
}

std::size_t bytes_of(const http_fake& r) {
  std::size_t n = r.method.size() + r.url.size() + r.body.size();
  for (const auto& [k, v] : r.headers) {
    n += k.size();
    if (const auto* s = v.get<std::string>()) n += s->size();
  }
  return n;
}

}  // namespace

// Hands a real dispatcher's answer on to the process, then counts it done: in
// that order, so the clock never sees "nothing in flight" before the process
// it woke looks runnable.
class test_fakes::relay final : public completion_target {
 public:
  relay(const test_fakes& fakes, completion&& inner) : fakes_(fakes), inner_(std::move(inner)) {}
  void add_ref() noexcept override { refs_.fetch_add(1, std::memory_order_relaxed); }
  void release_ref() noexcept override {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }
  void complete(std::uint64_t, outcome&& o) noexcept override {
    if (o.err)
      inner_.fail(std::move(*o.err));
    else
      inner_.succeed(std::move(o.val));
    fakes_.activity_.fetch_add(1);
    fakes_.in_flight_.fetch_sub(1);
  }
  bool awaits(std::uint64_t) const noexcept override { return !inner_.abandoned(); }

 private:
  const test_fakes& fakes_;
  completion inner_;
  std::atomic<std::uint32_t> refs_{0};
};

test_fakes::test_fakes()
    : start_wall_(seconds_of(std::chrono::system_clock::now().time_since_epoch())),
      start_steady_(seconds_of(std::chrono::steady_clock::now().time_since_epoch())) {}

test_fakes::~test_fakes() { stop(); }

void test_fakes::start(const runtime::command_sink& real, all_waiting_fn all_waiting,
                       stuck_fn stuck) {
  real_ = &real;
  all_waiting_ = std::move(all_waiting);
  stuck_ = std::move(stuck);
  clock_ = std::thread([this] { clock_loop(); });
}

void test_fakes::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (clock_.joinable()) clock_.join();
  std::multimap<double, completion> left;
  {
    std::lock_guard lock(mu_);
    left.swap(timers_);
  }
  for (auto& [deadline, done] : left)
    done.fail(failure(error_kind::canceled, "the test ended before this timer fired"));
}

double test_fakes::elapsed() const {
  std::lock_guard lock(mu_);
  return offset_;
}
double test_fakes::now() const { return start_wall_ + elapsed(); }
double test_fakes::monotonic() const { return start_steady_ + elapsed(); }

void test_fakes::submit(command&& cmd, completion&& done) const {
  activity_.fetch_add(1);
  switch (cmd.id) {
    case command_id::clock_sleep: {
      const double* s = cmd.args.get<double>();
      const std::int64_t* i = cmd.args.get<std::int64_t>();
      double seconds = s ? *s : i ? static_cast<double>(*i) : -1;
      if (!(seconds >= 0)) {
        done.fail(failure(error_kind::invalid, "clock.sleep expects a non-negative number"));
        return;
      }
      arm(seconds, std::move(done));
      return;
    }
    case command_id::fetch_request: answer_http(std::move(cmd), std::move(done)); return;
    case command_id::workflow_value: {
      const value* kind = cmd.args.find("kind");
      const std::string* name = kind ? kind->get<std::string>() : nullptr;
      if (name && *name == "now") return done.succeed(now());
      if (name && *name == "monotonic") return done.succeed(monotonic());
      break;
    }
    default: break;
  }
  forward(std::move(cmd), std::move(done));
}

void test_fakes::forward(command&& cmd, completion&& done) const {
  in_flight_.fetch_add(1);
  real_->submit(std::move(cmd), completion(new relay(*this, std::move(done))));
}

// A zero delay completes now, as the real clock's does; the rest wait for the
// clock thread.
void test_fakes::arm(double seconds, completion&& done) const {
  if (seconds == 0) return done.succeed();
  std::unique_lock lock(mu_);
  if (stopping_) {
    lock.unlock();
    return done.fail(failure(error_kind::canceled, "the test has ended"));
  }
  timers_.emplace(offset_ + seconds, std::move(done));
  lock.unlock();
  wake_.notify_one();
}

void test_fakes::answer_http(command&& cmd, completion&& done) const {
  fetch_request req;
  error err;
  if (!parse_fetch_request(std::move(cmd.args), req, err)) return done.fail(std::move(err));
  // The real dispatcher's permission check, so that a test catches a
  // script that lacks the permission it would need.
  if (req.check_allow && !runtime::allows_http(req.allow, req.url.host, req.url.port))
    return done.fail(permission_error(req.url));
  std::unique_lock lock(mu_);
  if (seen_.size() < max_recorded) {
    http_seen s{req.method, req.url.text, std::move(req.body), {}};
    for (auto& [k, v] : req.headers) s.headers.emplace_back(std::move(k), std::move(v));
    seen_.push_back(std::move(s));
  } else {
    ++seen_dropped_;
  }
  for (http_fake& rule : rules_) {
    if (!matches(rule, req.method, req.url.text)) continue;
    if (rule.times > 0) --rule.times;
    if (rule.fail) {
      error e = *rule.fail;
      lock.unlock();
      return done.fail(std::move(e));
    }
    value::map resp{{"status", rule.status},
                    {"headers", rule.headers},
                    {"body", rule.body},
                    {"url", req.url.text}};
    lock.unlock();
    return done.succeed(std::move(resp));
  }
  lock.unlock();
  done.fail(failure(error_kind::unavailable, "luad test: no fake answers " + req.method + " " +
                                                 req.url.text +
                                                 " (declare one with test.http.on)"));
}

std::optional<error> test_fakes::add_http(http_fake rule) const {
  std::lock_guard lock(mu_);
  std::size_t bytes = bytes_of(rule);
  if (rules_.size() >= max_rules)
    return failure(error_kind::limit,
                   "test.http.on: at most " + std::to_string(max_rules) + " rules per test");
  if (rule_bytes_ + bytes > max_fake_bytes)
    return failure(error_kind::limit, "test.http.on: the fakes of one test hold at most " +
                                          std::to_string(max_fake_bytes >> 20) + " MiB");
  rule_bytes_ += bytes;
  rules_.push_back(std::move(rule));
  return std::nullopt;
}

std::vector<http_seen> test_fakes::http_requests(std::size_t& dropped) const {
  std::lock_guard lock(mu_);
  dropped = seen_dropped_;
  return seen_;
}

// Nothing can move but the clock: no real command in flight, every process
// waiting, and no submit or answer while we looked.
bool test_fakes::quiet() const {
  std::uint64_t before = activity_.load();
  if (in_flight_.load() != 0 || !all_waiting_()) return false;
  return activity_.load() == before && in_flight_.load() == 0;
}

// Whenever the test is quiet, the earliest live timer fires and the clock
// jumps to its deadline; timers nobody waits for any more (a receive that got
// its message, a canceled time.after) are dropped without moving the clock.
// Quiet with no timer at all, for a while, means the test is stuck.
void test_fakes::clock_loop() {
  using namespace std::chrono_literals;
  int quiet_looks = 0;
  bool reported = false;
  std::unique_lock lock(mu_);
  while (!stopping_) {
    lock.unlock();
    bool still = quiet();
    lock.lock();
    if (stopping_) break;
    if (!still) {
      quiet_looks = 0;
      wake_.wait_for(lock, 100us);
      continue;
    }
    if (!timers_.empty()) {
      auto first = timers_.begin();
      double deadline = first->first;
      completion done = std::move(first->second);
      timers_.erase(first);
      if (done.abandoned()) continue;  // (dropping it completes nobody's wait)
      offset_ = std::max(offset_, deadline);
      lock.unlock();
      done.succeed();
      lock.lock();
      quiet_looks = 0;
      continue;
    }
    // Looks over 20 ms or more, so a process between two states is not taken
    // for a stuck one.
    if (++quiet_looks >= 20 && !reported) {
      reported = true;
      lock.unlock();
      if (stuck_) stuck_();
      lock.lock();
    }
    wake_.wait_for(lock, 1ms);
  }
}

}  // namespace luad::dispatcher
