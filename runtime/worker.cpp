// Worker loop: run the local queue (FIFO within an owner, owners in turn),
// steal when dry, park when there is nothing anywhere; leave when the queue
// was handed to a spare.
#include "runtime/worker.hpp"

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
  ++queued_;
}

// The front lane's first process; the lane then goes to the back of the turn
// order (if it has more and is not alone) so each owner with work gets every
// n-th turn. One owner with work, the common case, moves no lane.
process* worker::pop_locked() {
  if (lanes_.empty()) return nullptr;
  lane& front = *lanes_.front();
  process* p = front.queue.front();
  front.queue.pop_front();
  --queued_;
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
    n = queued_;
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
  return pop_locked();
}

// Takes turns as pop() would, so the stolen half keeps the owners' shares.
process* worker::steal_into(worker& thief) {
  std::unique_lock lock(mu_, std::try_to_lock);
  if (!lock.owns_lock() || queued_ == 0) return nullptr;
  process* first = pop_locked();
  std::size_t take = queued_ / 2;
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
    process* p = pop();
    if (!p) p = owner_.steal_for(*this);
    if (p) {
      p->run_turn(index_);
      continue;
    }
    std::unique_lock lock(mu_);
    if (queued_ != 0) continue;
    if (stopping_) break;
    r.clock_stale();
    owner_.note_parked(+1);
    while (queued_ == 0 && !stopping_) {
      parked_ = true;  // (again, after a spurious wake-up: pushers clear it)
      cv_.wait(lock);
    }
    owner_.note_parked(-1);
    parked_ = false;
    lock.unlock();
    owner_.note_busy();
  }
  t_current = nullptr;
}

}  // namespace luad::runtime
