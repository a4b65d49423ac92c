// The watchdog thread, the threads that run turns (one per worker, spares on
// demand), arming the one-shot hook and handing a held queue to a spare.
//
// DESIGN. No hook runs while a turn is within its slice. Each thread that runs
// turns has a `runner`: at a turn's start it stores the process, its running
// Lua thread, the start time and the cpu deadline, then makes `epoch_` odd; at
// the end it makes `epoch_` even. The watchdog wakes every half slice and reads
// each runner seqlock-style (epoch, fields, epoch again). A turn past its slice
// or its cpu deadline gets a one-shot count hook (`lua_sethook` with a count of
// 1, as lua.c does for Ctrl-C) on the Lua thread now running; the hook yields
// (preemption), or raises when the process is killed or over a limit, and then
// clears itself. A turn whose hook was armed at an earlier look and whose
// thread has since run half a tick of cpu without yielding cannot yield (Lua
// inside a C call): its worker's queue goes to a spare thread, and the held
// thread, once its turn ends, waits in the pool for the next hand-off. The
// thread's own cpu clock is the test, not the wall clock: on a busy machine
// the OS may not run a turn's thread for milliseconds, and a spare for it
// would be one more thread on the same cores (each such hand-off marked a
// pure Lua loop heavy and fed on itself: 37-56 ms late on a 2-core machine).
// A turn asleep in the kernel uses no cpu: after 4 ticks it is held unless
// the kernel reports its thread runnable (waiting for a core). Holding early matters:
// a held thread and the spare beside it share the cores, so every millisecond the queue waits is
// added to the lateness of whatever is queued behind the long call.
//
// Nothing waits. A held turn, or a heavy process's, is handed off only when
// something waits for its worker: a queued process, the run-next slot, or a
// timer due within a tick. Otherwise the long turn runs on where it is, and
// the watchdog looks again at its next tick (a process queued meanwhile
// waits at most that tick more). A hand-off with nothing behind it gained
// nothing and cost much: table.sort with a Lua comparator is a long C call
// (held at each slice), its process became heavy, and from then every turn
// of it was handed off at 250 µs, so it hopped between threads and cores,
// refilling its caches each time (bench/lua/tables.lua ran 1.35x slower than
// pinned to one core).
//
// The handshake. lua_sethook from another thread writes the state's hook fields
// and walks its CallInfo chain, so the state, the coroutine and the CallInfos
// must stay alive meanwhile. The watchdog sets the runner's `arming_`, issues a
// process-wide memory barrier (membarrier(2), or plain fences on both sides
// where it is missing), then checks that `epoch_` is still the turn it saw, and
// only then reads the process and thread and arms; it clears `arming_` after.
// The owner, after storing the even epoch and before freeing any block of the
// running process's heap (a CallInfo, a dead coroutine, lua_close), loads
// `arming_` and waits while it is set. Either the watchdog sees the new epoch
// and arms nothing, or the owner sees `arming_` and waits: the Dekker pattern,
// with the expensive barrier on the rare side (at most one per runner per
// tick) and a plain load on the owner's hot paths. A hook armed for an older
// turn (a lost race) carries that turn's epoch in `armed_for_` and only clears
// itself; a hook cleared while being armed is armed again at the next tick.
//
// Deep states. lua_sethook walks every CallInfo of the state to set traps; a
// recursion 500k frames deep made each arm take milliseconds, with the owner
// waiting on `arming_` all along, every slice, and the canary of the hostile
// corpus up to 37 ms late. An arm that took long spaces that process's next
// preemption (not its kills, not its cpu limit) by 20 times its cost (the
// watchdog's cpu time, so an arm the OS interrupted spaces nobody); in
// between its worker is handed off like any held one. (Lowering a held
// thread's priority was tried too: it made things worse, up to 66 ms, as the
// held thread then sat on the locks it shares with the spare.)
#include "runtime/watchdog.hpp"

#include <fcntl.h>
#include <linux/membarrier.h>
#include <pthread.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "runtime/process.hpp"
#include "runtime/span_pool.hpp"
#include "runtime/worker.hpp"

namespace luad::runtime {

namespace {

bool membarrier_ready() {
  return ::syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0;
}

// An arm slower than this (a deep call chain to walk) spaces the next
// preemption of that process by k_arm_spacing times its cost, so walking
// takes at most ~1/k_arm_spacing of the watchdog's time per deep process.
constexpr std::int64_t k_cheap_arm_ns = 50'000;
constexpr std::int64_t k_arm_spacing = 20;
// A turn of a heavy process (its last long turn was held) is handed off once
// it has run this long, at the watchdog's first look rather than after its
// slice: long enough that a short turn is left alone.
constexpr std::int64_t k_heavy_hold_ns = 250'000;

// The watchdog's period: it looks at every turn twice a slice.
std::chrono::microseconds tick_of(std::chrono::microseconds slice) {
  return std::max(slice / 2, std::chrono::microseconds(100));
}

// A turn armed this many ticks ago and still running is held even if its
// thread's cpu clock says it barely ran, unless the kernel says the thread is
// runnable (only waiting for a core): blocked in the kernel, say.
constexpr std::int64_t k_hold_wall_ticks = 4;

// Whether the kernel has thread `tid` runnable (state R: running or waiting
// for a core) rather than asleep in a call; unknown (no /proc) counts as not.
bool runnable(pid_t tid) {
  if (tid <= 0) return false;
  char path[64];
  std::snprintf(path, sizeof path, "/proc/self/task/%d/stat", static_cast<int>(tid));
  int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  char buf[512];
  ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (n <= 0) return false;
  buf[n] = '\0';
  // "tid (comm) S ...": comm may hold spaces and parentheses, so the state is
  // after the last ')'.
  const char* close_paren = std::strrchr(buf, ')');
  return close_paren && close_paren[1] == ' ' && close_paren[2] == 'R';
}

std::int64_t cpu_ns(clockid_t clock) {
  timespec ts{};
  if (::clock_gettime(clock, &ts) != 0) return 0;
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

}  // namespace

void watchdog::barrier() {
  if (runner::needs_fence_) {
    std::atomic_thread_fence(std::memory_order_seq_cst);
  } else {
    ::syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0);
  }
}

void runner::wait_unarmed() {
  // The watchdog holds arming_ for one lua_sethook call: spin, then yield.
  for (int i = 0; arming_.load(std::memory_order_acquire); ++i) {
    if (i > 64) std::this_thread::yield();
  }
}

watchdog::watchdog(watchdog_options opts, std::vector<worker*> workers)
    : opts_(opts), workers_(std::move(workers)) {
  if (opts_.max_spares == 0)
    opts_.max_spares = std::max<unsigned>(2, static_cast<unsigned>(workers_.size()));
  opts_.slice = std::max(opts_.slice, std::chrono::microseconds(100));
  std::size_t n = workers_.size() + opts_.max_spares;
  const std::int64_t prompt =
      std::chrono::nanoseconds(opts_.slice + 2 * tick_of(opts_.slice)).count();
  for (std::size_t i = 0; i < n; ++i) {
    runners_.push_back(std::make_unique<runner>());
    runners_.back()->prompt_turn_ns_ = prompt;
  }
  // Once per process, before the first runner starts (threads made later see it).
  static const bool once = [] {
    runner::needs_fence_ = !membarrier_ready();
    return true;
  }();
  (void)once;
}

watchdog::~watchdog() {
  stop_watching();
  join();
}

void watchdog::start() {
  for (std::size_t i = 0; i < workers_.size(); ++i) {
    runner& r = *runners_[i];
    r.busy_.store(true);
    r.thread_obj_ = std::thread([this, &r, w = workers_[i]] { drive(r, w); });
    note_cpu_clock(r);
  }
  started_runners_.store(static_cast<unsigned>(workers_.size()), std::memory_order_release);
  thread_ = std::thread([this] { watch(); });
}

void watchdog::stop_watching() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_one();
  if (thread_.joinable()) thread_.join();
}

void watchdog::join() {
  unsigned n = started_runners_.load(std::memory_order_acquire);
  for (unsigned i = 0; i < n; ++i) {
    runner& r = *runners_[i];
    {
      std::lock_guard lock(r.mu_);
      r.quit_ = true;
    }
    r.cv_.notify_one();
  }
  for (unsigned i = 0; i < n; ++i) {
    if (runners_[i]->thread_obj_.joinable()) runners_[i]->thread_obj_.join();
  }
}

void watchdog::note_cpu_clock(runner& r) {
  r.has_cpu_clock_ = ::pthread_getcpuclockid(r.thread_obj_.native_handle(), &r.cpu_clock_) == 0;
}

// Held: the turn's hook was first armed at an earlier look, and its thread
// has run on for half a tick of cpu since without yielding, so it is inside a
// C call; or it has not yielded for k_hold_wall_ticks while asleep in the
// kernel. A turn whose thread the OS did not run meanwhile (runnable, but more
// busy threads than cores) is not held however long it waits: a spare would
// only add one more thread to share the same cores.
bool watchdog::waits_behind(runner& r, std::int64_t horizon) {
  std::lock_guard lock(r.mu_);
  return r.assigned_ && r.assigned_->has_waiting(horizon);
}

bool watchdog::stuck(runner& r, std::uint64_t e, std::int64_t now) const {
  if (r.armed_epoch_ != e) return false;  // not armed yet: this look arms it
  const std::int64_t tick = std::chrono::nanoseconds(tick_of(opts_.slice)).count();
  if (!r.has_cpu_clock_) return now - r.armed_ns_ >= tick / 2;
  if (cpu_ns(r.cpu_clock_) - r.armed_cpu_ns_ >= tick / 2) return true;
  return now - r.armed_ns_ >= k_hold_wall_ticks * tick &&
         !runnable(r.tid_.load(std::memory_order_relaxed));
}

void watchdog::poke() {
  {
    std::lock_guard lock(mu_);
    poked_ = true;
  }
  cv_.notify_one();
}

namespace {
constexpr unsigned long k_timer_slack_ns = 1000;  // the kernel's default: 50,000
}  // namespace

// A thread's life: drive the queue it is given until its worker stops (then
// end) or the queue is handed to a spare (then wait to be given another).
void watchdog::drive(runner& r, worker* first) {
  runner::t_current_ = &r;
  r.tid_.store(static_cast<pid_t>(::syscall(SYS_gettid)), std::memory_order_relaxed);
  // A parked worker waits for its next timer (runtime/timer_wheel.hpp): the
  // kernel's default 50 µs timer slack would add up to that to every sleep.
  (void)::prctl(PR_SET_TIMERSLACK, k_timer_slack_ns, 0, 0, 0);
  if (first) {
    std::lock_guard lock(r.mu_);
    r.assigned_ = first;
  }
  for (;;) {
    worker* w;
    {
      std::unique_lock lock(r.mu_);
      r.cv_.wait(lock, [&] { return r.assigned_ || r.quit_; });
      if (!r.assigned_) break;
      w = r.assigned_;
    }
    w->drive(r);
    bool handed = r.handed_off();
    {
      std::lock_guard lock(r.mu_);
      r.assigned_ = nullptr;
      r.handed_off_.store(false, std::memory_order_release);
    }
    if (!handed) break;                               // the worker stopped: this thread ends
    r.busy_.store(false, std::memory_order_release);  // a spare again
  }
  runner::t_current_ = nullptr;
}

// Free process-heap spans above what span_pool keeps go back to the kernel
// from here: generously while every worker is parked (no turn waits on this
// thread then), a little once a second otherwise, so that a long scan never
// waits on a run of system calls.
void watchdog::trim_spans(std::int64_t now, bool dozing) {
  constexpr std::int64_t second = 1'000'000'000;
  if (!dozing && now - last_trim_ns_ < second) return;
  last_trim_ns_ = now;
  span_pool::trim(span_pool::k_keep, dozing ? span_pool::k_trim_idle : span_pool::k_trim_busy);
}

void watchdog::watch() {
  const auto tick = tick_of(opts_.slice);
  int idle = 0;
  std::unique_lock lock(mu_);
  while (!stop_) {
    lock.unlock();
    const std::int64_t now = steady_ns();
    bool active = scan(now);
    trim_spans(now, idle > 50);
    lock.lock();
    idle = active ? 0 : idle + 1;
    // After ~50 idle ticks, doze: a worker leaving its park wakes us (note_busy).
    bool doze = idle > 50;
    dozing_.store(doze, std::memory_order_relaxed);
    cv_.wait_for(lock, doze ? std::chrono::microseconds(50'000) : tick,
                 [&] { return poked_ || stop_; });
    dozing_.store(false, std::memory_order_relaxed);
    poked_ = false;
  }
}

bool watchdog::scan(std::int64_t now) {
  const std::int64_t slice = std::chrono::nanoseconds(opts_.slice).count();
  // A turn still running one tick after its slice had its hook armed and did
  // not yield: it is inside a C call, and is held.
  const std::int64_t hold = slice + std::chrono::nanoseconds(tick_of(opts_.slice)).count();
  bool active = false;
  auto& due = due_;
  auto& held = held_;
  due.clear();
  held.clear();
  unsigned n = started_runners_.load(std::memory_order_acquire);
  for (unsigned i = 0; i < n; ++i) {
    runner& r = *runners_[i];
    std::uint64_t e = r.epoch_.load(std::memory_order_acquire);
    if (e != r.seen_epoch_) active = true;
    r.seen_epoch_ = e;
    if (!(e & 1)) continue;
    active = true;
    std::int64_t started = r.started_.load(std::memory_order_relaxed);
    std::int64_t deadline = r.cpu_deadline_.load(std::memory_order_relaxed);
    bool heavy = r.heavy_.load(std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_acquire);
    if (r.epoch_.load(std::memory_order_relaxed) != e) continue;  // a new turn began
    std::int64_t ran = now - started;
    if (ran >= slice || now >= deadline) due.emplace_back(&r, e);
    bool early = heavy && ran >= k_heavy_hold_ns && ran < hold;
    if (r.handed_off()) continue;
    if (early || (ran >= hold && stuck(r, e, now))) held.push_back({&r, e, early});
  }
  if (!due.empty()) arm_all(due, now);
  const std::int64_t horizon = now + std::chrono::nanoseconds(tick_of(opts_.slice)).count();
  for (auto [r, e, early] : held) {
    if (!waits_behind(*r, horizon)) continue;  // no hand-off yet: see DESIGN, "Nothing waits"
    runner* s = spare();
    if (!s)
      break;  // at the cap: the held queue waits (its processes are stolen when others run dry)
    r->arming_.store(true, std::memory_order_relaxed);
    barrier();
    worker* w = nullptr;
    if (r->epoch_.load(std::memory_order_relaxed) == e) {
      // Only a turn seen stuck makes its process heavy: an early hand-off
      // proves nothing about the turn it moves.
      if (process* p = r->proc_.load(std::memory_order_relaxed); p && !early) p->note_held();
      std::lock_guard lock(r->mu_);
      w = r->assigned_;
      if (w) r->handed_off_.store(true, std::memory_order_seq_cst);  // worker::run_next
    }
    r->arming_.store(false, std::memory_order_release);
    if (!w) {
      s->busy_.store(false, std::memory_order_release);
      continue;
    }
    // Counted before the spare starts: whatever it runs, and whoever hears
    // of that, then sees the count (a test reads it once a woken process ends).
    handoffs_.fetch_add(1, std::memory_order_relaxed);
    if (early) early_handoffs_.fetch_add(1, std::memory_order_relaxed);
    {
      std::lock_guard lock(s->mu_);
      s->assigned_ = w;
    }
    s->cv_.notify_one();
  }
  return active;
}

void watchdog::arm_all(const std::vector<std::pair<runner*, std::uint64_t>>& due,
                       std::int64_t now) {
  for (auto [r, e] : due) r->arming_.store(true, std::memory_order_relaxed);
  barrier();
  std::int64_t cpu_mark = cpu_ns(CLOCK_THREAD_CPUTIME_ID);
  for (auto [r, e] : due) {
    if (r->epoch_.load(std::memory_order_relaxed) != e) continue;  // that turn ended
    process* p = r->proc_.load(std::memory_order_relaxed);
    bool over_cpu = now >= r->cpu_deadline_.load(std::memory_order_relaxed);
    if (over_cpu) p->note_over_cpu();
    lua_State* T = r->thread_.load(std::memory_order_relaxed);
    // Nothing to arm (a state being made or closed), or only preemption, which
    // waits for a deep state: its queue goes to a spare now rather than after
    // the hold time, so what waits behind it runs at once.
    bool spaced = now < p->next_preempt_ns;
    if (!T || (spaced && !over_cpu && !p->kill_requested())) {
      bool listed = false;  // (a loop: clang 14 cannot capture a structured binding)
      for (const held_turn& h : held_) listed = listed || h.r == r;
      if (!listed && !r->handed_off()) held_.push_back({r, e, false});
      continue;
    }
    r->armed_for_.store(e, std::memory_order_release);
    std::int64_t t0 = steady_ns();
    process::arm_hook(T);
    std::int64_t cost = steady_ns() - t0;
    if (cost > k_cheap_arm_ns) {
      // Wall time also counts the OS running something else meanwhile; what
      // the walk cost is this thread's cpu time (bounded by the time since
      // the last read), so a descheduled watchdog spaces nobody.
      std::int64_t cpu = cpu_ns(CLOCK_THREAD_CPUTIME_ID);
      cost = std::min(cost, cpu - cpu_mark);
      cpu_mark = cpu;
    }
    if (r->armed_epoch_ != e) {  // the turn's first arm (each look re-arms it)
      r->armed_epoch_ = e;
      r->armed_ns_ = t0;
      r->armed_cpu_ns_ = r->has_cpu_clock_ ? cpu_ns(r->cpu_clock_) : 0;
    }
    if (cost > k_cheap_arm_ns) p->next_preempt_ns = t0 + cost * k_arm_spacing;
    arms_.fetch_add(1, std::memory_order_relaxed);
  }
  for (auto [r, e] : due) r->arming_.store(false, std::memory_order_release);
}

runner* watchdog::spare() {
  unsigned n = started_runners_.load(std::memory_order_acquire);
  for (unsigned i = 0; i < n; ++i) {
    bool idle = false;
    if (runners_[i]->busy_.compare_exchange_strong(idle, true)) return runners_[i].get();
  }
  if (n == runners_.size()) return nullptr;
  runner& r = *runners_[n];
  r.busy_.store(true);
  r.thread_obj_ = std::thread([this, &r] { drive(r, nullptr); });
  note_cpu_clock(r);
  started_runners_.store(n + 1, std::memory_order_release);
  spares_.fetch_add(1, std::memory_order_relaxed);
  return &r;
}

watchdog_stats watchdog::stats() const {
  watchdog_stats s;
  s.arms = arms_.load(std::memory_order_relaxed);
  s.handoffs = handoffs_.load(std::memory_order_relaxed);
  s.early_handoffs = early_handoffs_.load(std::memory_order_relaxed);
  s.spares = spares_.load(std::memory_order_relaxed);
  unsigned n = started_runners_.load(std::memory_order_acquire);
  for (unsigned i = 0; i < n; ++i) s.held += runners_[i]->handed_off() ? 1 : 0;
  return s;
}

}  // namespace luad::runtime
