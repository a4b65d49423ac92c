// The fakes of `luad test` (docs/testing.md): a command sink that answers a
// test's yields without touching the world. Sleeps, timers and receive
// timeouts wait on a virtual clock that jumps to the next deadline whenever
// every process of the test is waiting, so a test that sleeps an hour ends in
// milliseconds and timers fire in deadline order; `time.now` and
// `time.monotonic` read that clock. HTTP requests are answered from the rules
// the test declared (test.http.on) and recorded. Store operations and the
// other commands go to the real dispatchers of the test's own engine (its
// store is a throwaway file). The processes a test spawns share its fakes.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "dispatcher/registry.hpp"

namespace luad::dispatcher {

/// One faked HTTP answer (test.http.on): for requests whose method and URL
/// match, either a response or an error.
struct http_fake {
  std::string method;  ///< upper case; empty matches any method
  std::string url;     ///< the whole URL, or a prefix when it ends in '*'
  std::int64_t status = 200;
  value::map headers;  ///< response headers (lower-case names)
  std::string body;
  std::optional<error> fail;  ///< answer with this error instead of a response
  std::int64_t times = -1;    ///< answers left; -1: any number
};

/// A request the test's processes made (test.http.requests).
struct http_seen {
  std::string method, url, body;
  value::map headers;
};

class test_fakes final : public runtime::command_sink {
 public:
  /// At most this many rules and recorded requests, and this many bytes of
  /// fake bodies: a test cannot make the runner hold unbounded memory.
  static constexpr std::size_t max_rules = 10'000;
  static constexpr std::size_t max_recorded = 10'000;
  static constexpr std::size_t max_fake_bytes = std::size_t{64} << 20;

  /// What the clock thread asks the runner: are all the test's processes
  /// waiting (none runnable or running)?
  using all_waiting_fn = std::function<bool()>;
  /// Called once (clock thread) when every process waits and no timer or
  /// command is pending: nothing can ever wake the test.
  using stuck_fn = std::function<void()>;

  test_fakes();
  ~test_fakes();  ///< calls stop()
  test_fakes(const test_fakes&) = delete;
  test_fakes& operator=(const test_fakes&) = delete;

  /// Starts the clock thread; `real` answers what is not faked.
  void start(const runtime::command_sink& real, all_waiting_fn all_waiting, stuck_fn stuck);
  /// Joins the clock thread and fails the timers still pending with
  /// `canceled` (call while the scheduler still runs). Idempotent.
  void stop();

  void submit(command&& cmd, completion&& done) const override;
  bool shared_with_children() const override { return true; }

  /// Virtual wall-clock time (seconds since the epoch), virtual monotonic
  /// seconds, and virtual seconds since the test began.
  double now() const;
  double monotonic() const;
  double elapsed() const;

  /// Adds a rule (checked first to last); an error when a limit is reached.
  std::optional<error> add_http(http_fake rule) const;
  /// The requests made so far, oldest first, and how many were not kept.
  std::vector<http_seen> http_requests(std::size_t& dropped) const;

 private:
  class relay;

  void arm(double seconds, completion&& done) const;
  void answer_http(command&& cmd, completion&& done) const;
  void forward(command&& cmd, completion&& done) const;
  bool quiet() const;
  void clock_loop();

  const runtime::command_sink* real_ = nullptr;
  all_waiting_fn all_waiting_;
  stuck_fn stuck_;
  double start_wall_ = 0, start_steady_ = 0;

  mutable std::mutex mu_;
  mutable std::condition_variable wake_;
  mutable std::multimap<double, completion> timers_;  // by virtual deadline, then arrival
  double offset_ = 0;                                 // virtual seconds passed (mu_)
  bool stopping_ = false;
  mutable std::vector<http_fake> rules_;  // answer_http counts their uses (mu_)
  mutable std::size_t rule_bytes_ = 0;
  mutable std::vector<http_seen> seen_;
  mutable std::size_t seen_dropped_ = 0;
  // Real commands not answered yet, and a count of every submit and answer:
  // the clock may only jump when both show nothing moved.
  mutable std::atomic<std::size_t> in_flight_{0};
  mutable std::atomic<std::uint64_t> activity_{0};
  std::thread clock_;
};

}  // namespace luad::dispatcher
