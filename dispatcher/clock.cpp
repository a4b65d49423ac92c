// Clock dispatcher: sleeps to the submitting worker's wheel, else a heap of
// deadlines and one Asio steady_timer for the first.
#include "dispatcher/clock.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>

#include <algorithm>
#include <cmath>
#include <iterator>

#include "runtime/scheduler.hpp"

namespace luad::dispatcher {

clock::clock() : timer_(io_) {}

clock::~clock() { stop(); }

void clock::start() {
  std::lock_guard lock(mu_);
  if (running_) return;
  running_ = true;
  io_.restart();
  thread_ = std::thread([this] {
    auto guard = boost::asio::make_work_guard(io_);
    io_.run();
  });
}

void clock::stop() {
  {
    std::lock_guard lock(mu_);
    if (!running_) return;
    running_ = false;
  }
  io_.stop();
  if (thread_.joinable()) thread_.join();
  std::vector<timer> left;
  {
    std::lock_guard lock(mu_);
    left.swap(heap_);
    armed_ = time_point::max();
  }
  for (timer& t : left) t.done.fail(error{error_kind::canceled, "the clock stopped", false, {}});
}

std::size_t clock::pending() const {
  std::size_t n = workers_ ? workers_->timers_pending() : 0;
  std::lock_guard lock(mu_);
  return n + heap_.size();
}

std::size_t clock::live() const {
  std::size_t n = workers_ ? workers_->timers_live() : 0;
  std::lock_guard lock(mu_);
  return n + static_cast<std::size_t>(std::count_if(
                 heap_.begin(), heap_.end(), [](const timer& t) { return !t.done.abandoned(); }));
}

void clock::submit(command&& cmd, completion&& done) {
  double seconds = 0;
  if (const auto* d = cmd.args.get<double>()) {
    seconds = *d;
  } else if (const auto* i = cmd.args.get<std::int64_t>()) {
    seconds = static_cast<double>(*i);
  } else {
    done.fail(error{error_kind::invalid, "clock.sleep expects a number of seconds", false, {}});
    return;
  }
  if (!(seconds > 0)) {  // zero, negative or NaN: due now
    done.succeed();
    return;
  }
  seconds = std::min(seconds, max_seconds);
  const auto now = std::chrono::steady_clock::now();
  auto exact = now + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                         std::chrono::duration<double>(seconds));
  if (!running_.load(std::memory_order_relaxed)) {
    done.fail(error{error_kind::unavailable, "the clock is not running", true, {}});
    return;
  }
  auto ns = [](time_point t) {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
  };
  if (workers_ && workers_->add_timer(ns(now), ns(exact), done)) return;
  // Round up to the next tick, as the wheels do: never early, at most a tick
  // late, and sleeps that end in the same tick fire in one batch.
  time_point deadline{std::chrono::ceil<tick>(exact.time_since_epoch())};
  bool earliest;
  std::vector<timer> dropped;  // completed (canceled) outside the lock
  {
    std::lock_guard lock(mu_);
    if (!running_) {  // stopped since the check above
      done.fail(error{error_kind::unavailable, "the clock is not running", true, {}});
      return;
    }
    if (heap_.size() >= purge_at_) purge_locked(dropped);
    heap_.push_back(timer{deadline, seq_++, std::move(done)});
    std::push_heap(heap_.begin(), heap_.end(), later{});
    earliest = deadline < armed_;
    if (earliest) armed_ = deadline;
  }
  if (earliest) boost::asio::post(io_, [this] { rearm(); });
}

void clock::purge_locked(std::vector<timer>& dropped) {
  auto gone = std::partition(heap_.begin(), heap_.end(),
                             [](const timer& t) { return !t.done.abandoned(); });
  dropped.assign(std::make_move_iterator(gone), std::make_move_iterator(heap_.end()));
  heap_.erase(gone, heap_.end());
  std::make_heap(heap_.begin(), heap_.end(), later{});
  // armed_ may now be earlier than the first deadline: the timer then fires
  // early, finds nothing due and re-arms (fire handles it).
  purge_at_ = std::max(k_min_purge, 2 * heap_.size());
}

void clock::rearm() {
  std::lock_guard lock(mu_);
  if (heap_.empty()) {
    armed_ = time_point::max();
    return;
  }
  armed_ = heap_.front().deadline;
  timer_.expires_at(armed_);
  timer_.async_wait([this](const boost::system::error_code& ec) { fire(ec); });
}

void clock::fire(const boost::system::error_code& ec) {
  if (ec == boost::asio::error::operation_aborted) return;  // re-armed meanwhile
  time_point next;
  {
    std::lock_guard lock(mu_);
    auto now = std::chrono::steady_clock::now();
    while (!heap_.empty() && heap_.front().deadline <= now) {
      std::pop_heap(heap_.begin(), heap_.end(), later{});
      due_.push_back(std::move(heap_.back().done));
      heap_.pop_back();
    }
    // Publish the next deadline now, so submits meanwhile do not post re-arms.
    next = heap_.empty() ? time_point::max() : heap_.front().deadline;
    armed_ = next;
  }
  for (completion& c : due_) c.succeed();
  due_.clear();
  if (next != time_point::max()) {
    timer_.expires_at(next);
    timer_.async_wait([this](const boost::system::error_code& e) { fire(e); });
  }
}

}  // namespace luad::dispatcher
