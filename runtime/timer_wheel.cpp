// A worker's timer wheel: 100 µs slots ~205 ms ahead, a heap for the rest.
#include "runtime/timer_wheel.hpp"

#include <algorithm>
#include <functional>
#include <iterator>

namespace luad::runtime {

namespace {
// A slot that held more than this many timers gives its memory back once
// fired, so a burst does not leave the wheel holding it for good.
constexpr std::size_t k_slot_keep = 4096;
}  // namespace

timer_wheel::timer_wheel() : slots_(k_slots) {}

void timer_wheel::add(nanos now, nanos deadline, completion&& done) {
  std::int64_t tick = deadline / k_tick_ns + (deadline % k_tick_ns != 0 ? 1 : 0);
  // An empty wheel may start anywhere: put its window at the present.
  if (wheel_count_ == 0) cursor_ = std::max(cursor_, now / k_tick_ns);
  tick = std::max(tick, cursor_);  // already due: fires at the next check
  if (tick < cursor_ + static_cast<std::int64_t>(k_slots)) {
    slot(tick).push_back(std::move(done));
    ++wheel_count_;
  } else {
    far_.push_back(far_timer{tick, seq_++, std::move(done)});
    std::push_heap(far_.begin(), far_.end(), later{});
  }
  next_ = std::min(next_, tick * k_tick_ns);
}

void timer_wheel::take_far_until(std::int64_t tick, std::vector<completion>& due) {
  while (!far_.empty() && far_.front().tick <= tick) {
    std::pop_heap(far_.begin(), far_.end(), later{});
    due.push_back(std::move(far_.back().done));
    far_.pop_back();
  }
}

// Far timers of a tick were added before its slot's (the cursor only moves
// on), so taking them first keeps a tick's timers in submission order.
void timer_wheel::take_due(nanos now, std::vector<completion>& due) {
  const std::int64_t now_tick = now / k_tick_ns;
  while (cursor_ <= now_tick) {
    if (wheel_count_ == 0) {
      take_far_until(now_tick, due);
      cursor_ = now_tick + 1;
      break;
    }
    take_far_until(cursor_, due);
    std::vector<completion>& s = slot(cursor_);
    if (!s.empty()) {
      wheel_count_ -= s.size();
      std::move(s.begin(), s.end(), std::back_inserter(due));
      s.clear();
      if (s.capacity() > k_slot_keep) std::vector<completion>().swap(s);
    }
    ++cursor_;
  }
  recompute_next();
}

void timer_wheel::recompute_next() {
  next_ = far_.empty() ? k_never : far_.front().tick * k_tick_ns;
  if (wheel_count_ == 0) return;
  for (std::int64_t t = cursor_; t < cursor_ + static_cast<std::int64_t>(k_slots); ++t) {
    if (!slot(t).empty()) {
      next_ = std::min(next_, t * k_tick_ns);
      return;
    }
  }
}

std::size_t timer_wheel::live() const {
  std::size_t n = 0;
  for (const auto& s : slots_) {
    n += static_cast<std::size_t>(
        std::count_if(s.begin(), s.end(), [](const completion& c) { return !c.abandoned(); }));
  }
  for (const far_timer& t : far_) n += t.done.abandoned() ? 0 : 1;
  return n;
}

void timer_wheel::purge(std::vector<completion>& dropped) {
  auto abandoned = [](const completion& c) { return c.abandoned(); };
  wheel_count_ = 0;
  for (auto& s : slots_) {
    auto gone = std::stable_partition(s.begin(), s.end(), std::not_fn(abandoned));
    std::move(gone, s.end(), std::back_inserter(dropped));
    s.erase(gone, s.end());
    wheel_count_ += s.size();
  }
  auto gone = std::partition(far_.begin(), far_.end(),
                             [&](const far_timer& t) { return !abandoned(t.done); });
  for (auto it = gone; it != far_.end(); ++it) dropped.push_back(std::move(it->done));
  far_.erase(gone, far_.end());
  std::make_heap(far_.begin(), far_.end(), later{});
  // next_ may now be early: the worker then finds nothing due and recomputes.
  purge_at_ = std::max(k_min_purge, 2 * size());
}

void timer_wheel::take_all(std::vector<completion>& out) {
  for (auto& s : slots_) {
    std::move(s.begin(), s.end(), std::back_inserter(out));
    s.clear();
  }
  for (far_timer& t : far_) out.push_back(std::move(t.done));
  far_.clear();
  wheel_count_ = 0;
  next_ = k_never;
}

}  // namespace luad::runtime
