// Worker loop: run the local queue (FIFO within an owner, owners in turn),
// steal when dry, park when there is nothing anywhere; leave when the queue
// was handed to a spare.
#include "runtime/worker.hpp"

#include <chrono>

#include "runtime/process.hpp"
#include "runtime/scheduler.hpp"
#include "runtime/watchdog.hpp"

namespace luad::runtime {

namespace {
thread_local worker* t_current = nullptr;
}

worker* worker::current() { return t_current; }

void worker::request_stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
}

namespace {
// Empty lanes kept per worker for reuse; past this, an emptied lane is freed,
// so a worker holds lanes for the owners with work, not for every owner seen.
constexpr std::size_t k_idle_lanes = 8;
}  // namespace

// The lane of p's owner account: the last lane in turn (the common case of
// one owner, or of a process pushing its own kind), else a search of the few
// lanes with work, else a reused or new lane at the end of the turn order.
void worker::push_locked(process* p) {
  const void* key = p->context().account.get();
  lane* l = nullptr;
  for (auto it = lanes_.rbegin(); it != lanes_.rend(); ++it) {
    if ((*it)->key == key) {
      l = it->get();
      break;
    }
  }
  if (!l) {
    if (idle_.empty()) {
      lanes_.push_back(std::make_unique<lane>());
    } else {
      lanes_.push_back(std::move(idle_.back()));
      idle_.pop_back();
    }
    l = lanes_.back().get();
    l->key = key;
  }
  l->queue.push_back(p);
  queued_.store(queued_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
}

// The front lane's first process; the lane then goes to the back of the turn
// order (if it has more and is not alone) so each owner with work gets every
// n-th turn. One owner with work, the common case, moves no lane.
process* worker::pop_locked() {
  if (lanes_.empty()) return nullptr;
  lane& front = *lanes_.front();
  process* p = front.queue.front();
  front.queue.pop_front();
  queued_.store(queued_.load(std::memory_order_relaxed) - 1, std::memory_order_relaxed);
  if (front.queue.empty()) {
    if (idle_.size() < k_idle_lanes) idle_.push_back(std::move(lanes_.front()));
    lanes_.pop_front();
  } else if (lanes_.size() > 1) {
    lanes_.push_back(std::move(lanes_.front()));
    lanes_.pop_front();
  }
  return p;
}

std::size_t worker::push(process* p) {
  std::size_t n;
  bool wake;
  {
    std::lock_guard lock(mu_);
    push_locked(p);
    // The run-next process counts: it is runnable work ahead of p, and a
    // queue of p alone behind it is work for an idle worker to steal (a
    // sender preempted while the receiver it woke waits in the slot).
    n = queued_.load(std::memory_order_relaxed) +
        (next_.load(std::memory_order_relaxed) != nullptr ? 1 : 0);
    wake = parked_;
    parked_ = false;  // one notify per park, not one per push
  }
  if (wake) cv_.notify_one();
  return n;
}

// Only one thread drives a worker, but a thread held in a turn past a
// hand-off still counts as this worker's (worker::current) while a spare
// drives it: both may offer a process, so the slot is claimed by CAS, and the
// held thread, once it sees the hand-off, takes its offer back to the locked
// queue, which wakes the spare if parked. Dekker with the watchdog's
// seq_cst store of handed_off: either the held thread sees it, or the spare,
// which starts driving after that store, sees the slot filled.
bool worker::run_next(process* p) {
  if (queued_.load(std::memory_order_relaxed) != 0) return false;
  process* empty = nullptr;
  if (!next_.compare_exchange_strong(empty, p, std::memory_order_seq_cst)) return false;
  runner* r = runner::current();
  if (r && r->handed_off()) {
    if (process* back = next_.exchange(nullptr, std::memory_order_acq_rel)) push(back);
  }
  return true;
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

void worker::add_timer(std::int64_t now_ns, std::int64_t deadline_ns, completion&& done) {
  std::vector<completion> dropped;  // abandoned timers, completed outside the lock
  bool wake;
  {
    std::lock_guard lock(mu_);
    if (timers_.wants_purge()) timers_.purge(dropped);
    timers_.add(now_ns, deadline_ns, std::move(done));
    next_timer_.store(timers_.next_deadline(), std::memory_order_relaxed);
    // Only a turn held past a hand-off adds to a worker another thread drives,
    // which may be parked until a later deadline.
    wake = parked_;
    parked_ = false;
  }
  if (wake) cv_.notify_one();
}

std::size_t worker::timers_pending() {
  std::lock_guard lock(mu_);
  return timers_.size();
}

std::size_t worker::timers_live() {
  std::lock_guard lock(mu_);
  return timers_.live();
}

void worker::fire_timers(std::int64_t now) {
  std::vector<completion> due;
  {
    std::lock_guard lock(mu_);
    timers_.take_due(now, due);
    next_timer_.store(timers_.next_deadline(), std::memory_order_relaxed);
  }
  // Each wakes its process onto this worker's queue (scheduler::enqueue).
  for (completion& c : due) c.succeed();
}

void worker::drop_timers() {
  std::vector<completion> left;
  {
    std::lock_guard lock(mu_);
    timers_.take_all(left);
    next_timer_.store(timer_wheel::k_never, std::memory_order_relaxed);
  }
  for (completion& c : left)
    c.fail(error{error_kind::canceled, "the scheduler stopped", false, {}});
}

process* worker::pop() {
  std::lock_guard lock(mu_);
  return pop_locked();
}

// Takes turns as pop() would, so the stolen half keeps the owners' shares.
process* worker::steal_into(worker& thief) {
  std::unique_lock lock(mu_, std::try_to_lock);
  if (!lock.owns_lock() || queued_.load(std::memory_order_relaxed) == 0) return nullptr;
  process* first = pop_locked();
  std::size_t take = queued_.load(std::memory_order_relaxed) / 2;
  if (take == 0) return first;
  std::vector<process*> moved;
  moved.reserve(take);
  for (std::size_t i = 0; i < take; ++i) moved.push_back(pop_locked());
  lock.unlock();
  std::lock_guard theirs(thief.mu_);
  for (process* p : moved) thief.push_locked(p);
  return first;
}

void worker::drive(runner& r) {
  t_current = this;
  for (;;) {
    if (r.handed_off()) break;  // a spare drives this queue now
    if (next_timer_.load(std::memory_order_relaxed) <= r.now_ns()) fire_timers(r.now_ns());
    // seq_cst: a spare's look here must see a held thread's offer (run_next).
    process* p = next_.load(std::memory_order_seq_cst) != nullptr
                     ? next_.exchange(nullptr, std::memory_order_acq_rel)
                     : nullptr;
    if (!p) p = pop();
    if (!p) p = owner_.steal_for(*this);
    if (p) {
      p->run_turn(index_);
      continue;
    }
    std::unique_lock lock(mu_);
    if (queued_.load(std::memory_order_relaxed) != 0) continue;
    if (stopping_) {
      lock.unlock();
      drop_timers();  // their processes were killed: nobody waits for them
      break;
    }
    park(r, lock);
  }
  t_current = nullptr;
}

// Sleeps until work is pushed or the next timer is due; mu_ held.
void worker::park(runner& r, std::unique_lock<std::mutex>& lock) {
  r.clock_stale();
  owner_.note_parked(+1);
  while (queued_.load(std::memory_order_relaxed) == 0 && !stopping_) {
    parked_ = true;  // (again, after a spurious wake-up: pushers clear it)
    std::int64_t next = timers_.next_deadline();
    if (next == timer_wheel::k_never) {
      cv_.wait(lock);
    } else if (cv_.wait_until(lock, std::chrono::steady_clock::time_point(std::chrono::nanoseconds(
                                        next))) == std::cv_status::timeout) {
      break;
    }
  }
  owner_.note_parked(-1);
  parked_ = false;
  lock.unlock();
  owner_.note_busy();
}

}  // namespace luad::runtime
