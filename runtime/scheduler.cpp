// Scheduler: the process table, spawn and kill, routing runnable processes to
// worker queues, and the shutdown that ends every process.
//
// DESIGN. Each worker owns a FIFO run queue. A process made runnable on a
// worker thread (preemption, a command completed inline) goes to the back of
// that worker's queue; one made runnable elsewhere (a timer firing, a spawn)
// goes to the worker it last ran on. A worker that runs dry steals half of
// another's queue; a parked worker is woken when work is pushed to it, and one
// parked worker is woken to steal when a queue holds more than one process.
// The table owns one reference to each live process; completions hold others.
// The watchdog (runtime/watchdog.cpp) owns the threads: one drives each
// worker's queue, and a spare takes over a queue whose thread is held in a turn
// that cannot be preempted.
#include "runtime/scheduler.hpp"

#include "runtime/block_pool.hpp"
#include "runtime/message_codec.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <unordered_map>

#include <spdlog/spdlog.h>

#include "runtime/logging.hpp"
#include "runtime/module.hpp"
#include "runtime/process.hpp"
#include "runtime/sandbox.hpp"
#include "runtime/worker.hpp"

namespace luad::runtime {

std::string_view reason_name(exit_reason r) {
  switch (r) {
    case exit_reason::normal: return "normal";
    case exit_reason::error: return "error";
    case exit_reason::killed: return "killed";
    case exit_reason::limit: return "limit";
    case exit_reason::shutdown: return "shutdown";
  }
  return "unknown";
}

value exit_value(const exit_info& e) {
  value::map m;
  m.emplace_back("pid", e.id.to_string());
  m.emplace_back("reason", std::string(reason_name(e.reason)));
  if (e.reason == exit_reason::normal) {
    m.emplace_back("results", value::array(e.results.begin(), e.results.end()));
  } else {
    m.emplace_back("kind", std::string(kind_name(e.err.kind)));
    m.emplace_back("message", e.err.message);
    m.emplace_back("retryable", e.err.retryable);
    if (!e.err.traceback.empty()) m.emplace_back("traceback", e.err.traceback);
  }
  return m;
}

/// Live processes by serial, sharded to keep spawn and exit off one lock.
class process_table {
 public:
  void insert(process* p) {
    shard& s = shard_of(p->id().serial);
    std::lock_guard lock(s.mu);
    s.map.emplace(p->id().serial, p);
    size_.fetch_add(1, std::memory_order_relaxed);
  }
  void erase(pid id) {
    shard& s = shard_of(id.serial);
    {
      std::lock_guard lock(s.mu);
      s.map.erase(id.serial);
    }
    if (size_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      std::lock_guard lock(empty_mu_);
      empty_cv_.notify_all();
    }
  }
  /// The process with `id`, with a reference the caller must release.
  process* find(pid id) {
    shard& s = shard_of(id.serial);
    std::lock_guard lock(s.mu);
    auto it = s.map.find(id.serial);
    if (it == s.map.end()) return nullptr;
    it->second->add_ref();
    return it->second;
  }
  /// Calls `f` on every live process (each with a reference held).
  template <class F>
  void for_each(F&& f) {
    for (shard& s : shards_) {
      std::vector<process*> batch;
      {
        std::lock_guard lock(s.mu);
        for (auto& [serial, p] : s.map) {
          p->add_ref();
          batch.push_back(p);
        }
      }
      for (process* p : batch) {
        f(p);
        p->release_ref();
      }
    }
  }
  std::size_t size() const { return size_.load(std::memory_order_acquire); }
  /// Waits up to `d` for the table to become empty.
  bool wait_empty(std::chrono::milliseconds d) {
    std::unique_lock lock(empty_mu_);
    return empty_cv_.wait_for(lock, d, [this] { return size() == 0; });
  }

 private:
  struct shard {
    std::mutex mu;
    // Nodes are inserted by the spawning thread and erased by a worker.
    std::unordered_map<std::uint64_t, process*, std::hash<std::uint64_t>,
                       std::equal_to<std::uint64_t>,
                       pooled_allocator<std::pair<const std::uint64_t, process*>>>
        map;
  };
  shard& shard_of(std::uint64_t serial) { return shards_[serial % shards_.size()]; }
  std::array<shard, 16> shards_;
  std::atomic<std::size_t> size_{0};
  std::mutex empty_mu_;
  std::condition_variable empty_cv_;
};

scheduler::scheduler(scheduler_options opts, const command_sink& commands)
    : commands_(commands),
      opts_(opts),
      modules_(opts_.modules),
      table_(std::make_unique<process_table>()) {
  init_sandbox();
  unsigned n = opts_.workers ? opts_.workers : std::max(1u, std::thread::hardware_concurrency());
  std::vector<worker*> ws;
  for (unsigned i = 0; i < n; ++i) {
    workers_.push_back(std::make_unique<worker>(*this, i));
    ws.push_back(workers_.back().get());
  }
  watchdog_ = std::make_unique<runtime::watchdog>(opts_.watch, std::move(ws));
}

scheduler::~scheduler() { stop(); }

void scheduler::start() {
  if (running_.exchange(true)) return;
  watchdog_->start();
  accepting_.store(true);
}

void scheduler::stop() {
  accepting_.store(false);
  if (!running_.exchange(false)) return;
  // Kill until empty: a spawn racing with the first sweep is caught by the next.
  while (table_->size() > 0) {
    table_->for_each([](process* p) { p->request_kill(exit_reason::shutdown); });
    table_->wait_empty(std::chrono::milliseconds(20));
  }
  watchdog_->stop_watching();
  for (auto& w : workers_) w->request_stop();
  watchdog_->join();
}

result<pid> scheduler::spawn(chunk_ptr code, spawn_options opts) {
  if (!code || !accepting_.load(std::memory_order_acquire))
    return fail(error_kind::unavailable, "the scheduler is not accepting processes", true);
  if (opts_.max_processes && table_->size() >= opts_.max_processes) {
    return fail(error_kind::limit,
                "process limit reached (" + std::to_string(opts_.max_processes) + " alive)", true);
  }
  // The owner's quotas (runtime/owners.hpp), given back in retire().
  const process_context& ctx = opts.context ? *opts.context : opts.ctx;
  if (ctx.account)
    if (status ok = ctx.account->try_add_process(ctx.limits.memory); !ok) return ok.error();
  pid id{opts_.node, next_serial_.fetch_add(1, std::memory_order_relaxed)};
  const pid link_to = opts.link_to, monitored_by = opts.monitored_by;
  const std::uint64_t monitor_ref = opts.monitor_ref;
  auto* p = new process(*this, id, std::move(code), std::move(opts));
  unsigned home;
  if (worker* w = worker::current()) {
    home = w->index();
  } else {
    home = next_worker_.fetch_add(1, std::memory_order_relaxed) % worker_count();
  }
  p->set_home(home);
  table_->insert(p);
  // Link and monitor before the child can run, so its exit cannot be missed.
  if (link_to) {
    process* parent = table_->find(link_to);
    if (parent) {
      p->link(*parent);
      parent->release_ref();
    }
  }
  if (monitored_by) p->add_monitor(monitor_ref, monitored_by);
  // Its owner began a stop after it was counted and may have swept the table
  // before it was in it (runtime/owners.hpp): it ends at its first turn.
  if (const auto& account = p->context().account; account && account->stopping())
    p->request_kill(exit_reason::killed, "its owner is being stopped");
  spawned_.fetch_add(1, std::memory_order_relaxed);
  enqueue(p);
  return id;
}

bool scheduler::kill(pid id, exit_reason reason, std::string why) {
  process* p = table_->find(id);
  if (!p) return false;
  p->request_kill(reason, std::move(why));
  p->release_ref();
  return true;
}

std::size_t scheduler::kill_owner(std::string_view owner, std::string why) {
  for (const account_ptr& account : owners_.accounts_of(owner)) account->begin_stop();
  std::size_t killed = 0;
  table_->for_each([&](process* p) {
    // One that has ended is still in the table while its exit is reported:
    // it is not counted as killed.
    if (p->context().owner != owner || p->ended()) return;
    p->request_kill(exit_reason::killed, why);
    ++killed;
  });
  return killed;
}

void scheduler::enqueue(process* p) {
  worker* self = worker::current();
  if (self && self->run_next(p)) return;
  worker& target = self ? *self : *workers_[p->last_worker() % workers_.size()];
  std::size_t depth = target.push(p);
  if (depth > 1 && parked_.load(std::memory_order_relaxed) > 0) wake_idle(&target);
}

bool scheduler::add_timer(std::int64_t now_ns, std::int64_t deadline_ns, completion& done) {
  worker* w = worker::current();
  if (!w || &w->owner() != this) return false;
  w->add_timer(now_ns, deadline_ns, std::move(done));
  return true;
}

std::size_t scheduler::timers_pending() const {
  std::size_t n = 0;
  for (const auto& w : workers_) n += w->timers_pending();
  return n;
}

std::size_t scheduler::timers_live() const {
  std::size_t n = 0;
  for (const auto& w : workers_) n += w->timers_live();
  return n;
}

void scheduler::wake_idle(const worker* self) {
  for (auto& w : workers_) {
    if (w.get() != self && w->wake_if_parked()) return;
  }
}

process* scheduler::steal_for(worker& self) {
  std::size_t n = workers_.size();
  for (std::size_t i = 1; i < n; ++i) {
    worker& victim = *workers_[(self.index() + i) % n];
    if (process* p = victim.steal_into(self)) {
      self.counters.steals.fetch_add(1, std::memory_order_relaxed);
      return p;
    }
  }
  return nullptr;
}

namespace {

// A cap on names kept reserved for accounts whose processes all ended.
constexpr std::size_t k_max_reserved_names = 10000;

}  // namespace

status scheduler::register_name(const std::string& name, const process& p) {
  const std::string& owner = p.context().owner;
  bool keep = p.context().account && p.context().account->keeps_names();
  {
    std::lock_guard lock(names_mu_);
    if (auto it = name_of_.find(p.id().serial); it != name_of_.end())
      return fail(error_kind::invalid,
                  "this process is already registered as '" + it->second + "'");
    auto it = names_.find(name);
    if (it != names_.end()) {
      const name_entry& e = it->second;
      if (e.owner != owner)
        return fail(error_kind::permission_denied, "the name '" + name + "' belongs to " +
                                                       (e.owner.empty() ? "the daemon" : e.owner));
      if (e.id)
        return fail(error_kind::invalid, "the name '" + name + "' is taken by " + e.id.to_string());
      --reserved_names_;  // the owner takes its reserved name back
    }
    names_[name] = name_entry{p.id(), owner, keep};
    name_of_.emplace(p.id().serial, name);
  }
  if (name_watch* w = name_watch_.load(std::memory_order_acquire)) w->registered(p, name);
  return done{};
}

bool scheduler::unregister_name(pid id, bool at_exit) {
  std::string name;
  {
    std::lock_guard lock(names_mu_);
    auto it = name_of_.find(id.serial);
    if (it == name_of_.end()) return false;
    auto entry = names_.find(it->second);
    if (at_exit && entry->second.keep && reserved_names_ < k_max_reserved_names) {
      entry->second.id = pid{};  // stays its owner's
      ++reserved_names_;
    } else {
      names_.erase(entry);
    }
    name = std::move(it->second);
    name_of_.erase(it);
  }
  if (name_watch* w = name_watch_.load(std::memory_order_acquire)) w->unregistered(id, name);
  return true;
}

void scheduler::visit(const std::function<void(process&)>& f) {
  table_->for_each([&](process* p) { f(*p); });
}

namespace {

std::string cancel_payload(std::string_view why) {
  std::string payload;
  encode_value(value(value::map{{"reason", std::string(why)}}), payload);
  return payload;
}

}  // namespace

void scheduler::cancel_all(const std::string& why) {
  std::string payload = cancel_payload(why);
  table_->for_each([&](process* p) {
    if (message* m = message::make(pid{}, "CANCEL", payload)) p->deliver(m);
  });
}

bool scheduler::cancel(pid id, std::string_view why) {
  process* p = find(id);
  if (!p) return false;
  message* m = message::make(pid{}, "CANCEL", cancel_payload(why));
  if (m) p->deliver(m);
  p->release_ref();
  return m != nullptr;
}

pid scheduler::whereis(const std::string& name) {
  std::lock_guard lock(names_mu_);
  auto it = names_.find(name);
  return it == names_.end() ? pid{} : it->second.id;
}

bool scheduler::set_upgrade_interest(process& p, bool on) {
  std::lock_guard lock(upgrade_mu_);
  bool was = p.wants_upgrade;
  p.wants_upgrade = on;
  if (on) {
    upgrade_[p.id().serial] = p.id();
  } else {
    upgrade_.erase(p.id().serial);
  }
  return was;
}

std::size_t scheduler::notify_upgrade(const std::vector<std::string>& changed, bool everything) {
  std::vector<pid> interested;
  {
    std::lock_guard lock(upgrade_mu_);
    for (const auto& [serial, id] : upgrade_) interested.push_back(id);
  }
  std::size_t told = 0;
  for (pid id : interested) {
    process* p = find(id);
    if (!p) continue;
    std::vector<std::string> uses = code_.dependencies(p->script_name());
    uses.push_back(p->script_name());
    value::array files;
    for (const std::string& path : changed) {
      bool used = everything || std::find(uses.begin(), uses.end(), path) != uses.end();
      if (used) files.emplace_back(path);
    }
    if (!files.empty()) {
      std::string bytes;
      encode_value(value(value::map{{"files", value(std::move(files))}}), bytes);
      if (message* m = message::make(pid{}, "UPGRADE", bytes)) {
        p->deliver(m);
        ++told;
      }
    }
    p->release_ref();
  }
  return told;
}

void scheduler::retire(process* p, const exit_info& info) {
  if (p->has_name) unregister_name(p->id(), true);  // names vanish (or stay reserved)
  if (const auto& account = p->context().account)
    account->remove_process(p->context().limits.memory);
  if (p->wants_upgrade) set_upgrade_interest(*p, false);
  // Its own on_exit runs while the process is still in the table, so whoever
  // it tells (the daemon's remembered exits) has the exit before the pid stops
  // being found: a `wait` right after a kill never sees neither.
  try {
    p->call_on_exit(info);
  } catch (const std::exception& e) {
    logger().error("exit callback of {} threw: {}", p->id().to_string(), e.what());
  }
  table_->erase(p->id());
  counters().exited.fetch_add(1, std::memory_order_relaxed);
  counters().exits[static_cast<std::size_t>(info.reason)].fetch_add(1, std::memory_order_relaxed);
  try {
    if (opts_.exit_hook) opts_.exit_hook(info, p->context(), p->script_name());
  } catch (const std::exception& e) {
    logger().error("exit hook for {} threw: {}", p->id().to_string(), e.what());
  }
  p->release_ref();
}

worker_counters& scheduler::counters() { return worker::current()->counters; }

process* scheduler::find(pid id) { return table_->find(id); }

std::size_t scheduler::alive() const { return table_->size(); }

scheduler_stats scheduler::stats() const {
  scheduler_stats s;
  s.spawned = spawned_.load(std::memory_order_relaxed);
  s.dead_letters = dead_letters_.load(std::memory_order_relaxed);
  for (const auto& w : workers_) {
    s.exited += w->counters.exited.load(std::memory_order_relaxed);
    s.yields += w->counters.yields.load(std::memory_order_relaxed);
    s.preemptions += w->counters.preemptions.load(std::memory_order_relaxed);
    s.steals += w->counters.steals.load(std::memory_order_relaxed);
    for (std::size_t i = 0; i < s.commands.size(); ++i)
      s.commands[i] += w->counters.commands[i].load(std::memory_order_relaxed);
    for (std::size_t i = 0; i < s.exits.size(); ++i)
      s.exits[i] += w->counters.exits[i].load(std::memory_order_relaxed);
  }
  s.alive = table_->size();
  watchdog_stats ws = watchdog_->stats();
  s.hooks_armed = ws.arms;
  s.handoffs = ws.handoffs;
  s.early_handoffs = ws.early_handoffs;
  s.spare_threads = ws.spares;
  s.held = ws.held;
  return s;
}

}  // namespace luad::runtime
