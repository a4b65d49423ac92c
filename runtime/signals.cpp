// Links and monitors: who hears about a process's exit, and how. A linked
// process that does not trap exits is killed by an abnormal exit; one that
// traps gets an EXIT message; a monitor gets a DOWN message with its ref.
#include <algorithm>
#include <new>
#include <thread>

#include "runtime/message_codec.hpp"
#include "runtime/process.hpp"
#include "runtime/scheduler.hpp"

namespace luad::runtime {

namespace {

// The payload of EXIT and DOWN: {reason, kind, message[, ref]} (no kind and
// message for a normal exit). The one definition of that shape.
std::string exit_payload(std::string_view reason, const error* err, std::uint64_t ref) {
  value::map m;
  m.emplace_back("reason", std::string(reason));
  if (err) {
    m.emplace_back("kind", std::string(kind_name(err->kind)));
    m.emplace_back("message", err->message);
  }
  if (ref) m.emplace_back("ref", static_cast<std::int64_t>(ref));
  std::string out;
  encode_value(value(std::move(m)), out);
  return out;
}

void send_signal(process& to, pid from, std::string_view topic, const std::string& payload) {
  if (message* m = message::make(from, topic, payload)) to.deliver(m);
}

const error* abnormal(const exit_info& info) {
  return info.reason == exit_reason::normal ? nullptr : &info.err;
}

}  // namespace

void send_noproc_down(process& watcher, pid target, std::uint64_t ref) noexcept {
  try {
    error gone{error_kind::not_found, "no such process", false, {}};
    send_signal(watcher, target, "DOWN", exit_payload("noproc", &gone, ref));
  } catch (...) {
    // out of memory: the monitor simply never fires
  }
}

void process::lock_links() noexcept {
  while (links_lock_.exchange(true, std::memory_order_acquire)) std::this_thread::yield();
}

bool process::link(process& other) {
  if (&other == this) return true;
  process* first = this < &other ? this : &other;
  process* second = this < &other ? &other : this;
  first->lock_links();
  second->lock_links();
  bool ok = !signalled_ && !other.signalled_;
  if (ok) {
    std::vector<pid>& mine = rare_locked().links;
    if (std::find(mine.begin(), mine.end(), other.id()) == mine.end()) {
      mine.push_back(other.id());
      other.rare_locked().links.push_back(id());
    }
  }
  second->unlock_links();
  first->unlock_links();
  return ok;
}

void process::unlink(process& other) {
  process* first = this < &other ? this : &other;
  process* second = this < &other ? &other : this;
  first->lock_links();
  second->lock_links();
  if (rare_) std::erase(rare_->links, other.id());
  if (other.rare_) std::erase(other.rare_->links, id());
  second->unlock_links();
  first->unlock_links();
}

bool process::add_monitor(std::uint64_t ref, pid watcher) {
  lock_links();
  bool ok = !signalled_;
  if (ok) rare_locked().monitors.emplace_back(ref, watcher);
  unlock_links();
  return ok;
}

bool process::remove_monitor(std::uint64_t ref, pid watcher) {
  lock_links();
  std::size_t n =
      rare_ ? std::erase_if(rare_->monitors,
                            [&](const auto& m) { return m.first == ref && m.second == watcher; })
            : 0;
  unlock_links();
  return n > 0;
}

void process::signal_exit(const exit_info& info) {
  lock_links();
  signalled_ = true;
  std::vector<pid> links;
  std::vector<std::pair<std::uint64_t, pid>> monitors;
  if (rare_) {
    links = std::move(rare_->links);
    monitors = std::move(rare_->monitors);
  }
  unlock_links();
  if (links.empty() && monitors.empty()) return;

  // Each recipient on its own: running out of memory for one (its payload, the
  // kill's text) must not leave the others unsignalled, nor end the daemon.
  // EXIT and DOWN are always queued (charged to the receiver's bytes, never
  // refused): their size is bounded by the exit's error text (exit_copy.hpp).
  std::string_view reason = reason_name(info.reason);
  std::string payload;
  try {
    payload = exit_payload(reason, abnormal(info), 0);
  } catch (const std::bad_alloc&) {
  }
  for (pid linked : links) {
    process* other = owner_.find(linked);
    if (!other) continue;
    other->lock_links();
    if (other->rare_) std::erase(other->rare_->links, id());
    other->unlock_links();
    if (other->traps_exits()) {
      if (!payload.empty()) send_signal(*other, id(), "EXIT", payload);
    } else if (info.reason != exit_reason::normal) {
      std::string why;
      try {
        why = "linked process " + id().to_string() + " ended (" +
              std::string(reason_name(info.reason)) + ")";
      } catch (const std::bad_alloc&) {
      }
      other->request_kill(exit_reason::killed, std::move(why));
    }
    other->release_ref();
  }
  for (const auto& [ref, watcher] : monitors) {
    if (process* w = owner_.find(watcher)) {
      try {
        send_signal(*w, id(), "DOWN", exit_payload(reason, abnormal(info), ref));
      } catch (const std::bad_alloc&) {
        // out of memory: this monitor never fires
      }
      w->release_ref();
    }
  }
}

}  // namespace luad::runtime
