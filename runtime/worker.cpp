// Worker loop: run the local queue in FIFO order, steal when dry, park when
// there is nothing anywhere.
#include "runtime/worker.hpp"

#include "runtime/process.hpp"
#include "runtime/scheduler.hpp"

namespace luad::runtime {

namespace {
thread_local worker* t_current = nullptr;
}

worker* worker::current() { return t_current; }

void worker::start() {
  thread_ = std::thread([this] {
    t_current = this;
    loop();
    t_current = nullptr;
  });
}

void worker::stop_and_join() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_one();
  if (thread_.joinable()) thread_.join();
}

std::size_t worker::push(process* p) {
  std::size_t n;
  bool wake;
  {
    std::lock_guard lock(mu_);
    queue_.push_back(p);
    n = queue_.size();
    wake = parked_;
    parked_ = false;  // one notify per park, not one per push
  }
  if (wake) cv_.notify_one();
  return n;
}

bool worker::wake_if_parked() {
  bool wake;
  {
    std::lock_guard lock(mu_);
    wake = parked_;
    parked_ = false;
  }
  if (wake) cv_.notify_one();
  return wake;
}

process* worker::pop() {
  std::lock_guard lock(mu_);
  if (queue_.empty()) return nullptr;
  process* p = queue_.front();
  queue_.pop_front();
  return p;
}

process* worker::steal_into(worker& thief) {
  std::unique_lock lock(mu_, std::try_to_lock);
  if (!lock.owns_lock() || queue_.empty()) return nullptr;
  process* first = queue_.front();
  queue_.pop_front();
  std::size_t take = queue_.size() / 2;
  if (take == 0) return first;
  std::deque<process*> moved(queue_.begin(), queue_.begin() + static_cast<std::ptrdiff_t>(take));
  queue_.erase(queue_.begin(), queue_.begin() + static_cast<std::ptrdiff_t>(take));
  lock.unlock();
  std::lock_guard theirs(thief.mu_);
  thief.queue_.insert(thief.queue_.end(), moved.begin(), moved.end());
  return first;
}

void worker::loop() {
  for (;;) {
    process* p = pop();
    if (!p) p = owner_.steal_for(*this);
    if (p) {
      p->run_turn(index_);
      continue;
    }
    std::unique_lock lock(mu_);
    if (!queue_.empty()) continue;
    if (stopping_) return;
    owner_.note_parked(+1);
    while (queue_.empty() && !stopping_) {
      parked_ = true;  // (again, after a spurious wake-up: pushers clear it)
      cv_.wait(lock);
    }
    owner_.note_parked(-1);
    parked_ = false;
  }
}

}  // namespace luad::runtime
