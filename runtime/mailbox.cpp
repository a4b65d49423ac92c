// Mailbox: an intrusive MPSC queue the senders append to and the owner reads
// oldest first, plus the owner's list of messages a selective receive skipped.
#include "runtime/mailbox.hpp"

#include <cstdlib>
#include <cstring>
#include <new>

namespace luad::runtime {

message* message::make(pid from, std::string_view topic, std::string_view body) noexcept {
  void* raw = std::malloc(sizeof(message) + topic.size() + body.size());
  if (!raw) return nullptr;
  auto* m = new (raw) message();
  m->from = from;
  m->topic_size = static_cast<std::uint32_t>(topic.size());
  m->body_size = static_cast<std::uint32_t>(body.size());
  std::memcpy(m->data(), topic.data(), topic.size());
  std::memcpy(m->data() + topic.size(), body.data(), body.size());
  return m;
}

void message::destroy(message* m) noexcept {
  m->~message();
  std::free(m);
}

mailbox::~mailbox() { clear(); }

// Only the destructor's clear sees every message: one that ends the process
// while a sender is between its exchange and its link stops at that sender's
// message, and the rest go with the mailbox (no sender holds it by then).
void mailbox::clear() noexcept {
  auto drop = [this](message* m) {
    count_taken(m);
    message::destroy(m);
  };
  while (skipped_) {
    message* next = skipped_->next.load(std::memory_order_relaxed);
    drop(skipped_);
    skipped_ = next;
  }
  skipped_last_ = nullptr;
  while (message* m = dequeue()) drop(m);
}

// Exact among senders (they all add to charged_); the owner's released_ is
// read only when the senders' copy of it says the bound may be passed, and
// what it released after that read only makes the box look fuller.
bool mailbox::reserve(std::size_t bytes, std::size_t max_bytes) noexcept {
  std::size_t before = charged_.fetch_add(bytes, std::memory_order_relaxed);
  if (!max_bytes) return true;
  auto fits = [&](std::size_t released) {
    std::size_t queued = before >= released ? before - released : 0;
    return queued + bytes <= max_bytes && queued + bytes >= queued;
  };
  if (fits(released_seen_.load(std::memory_order_relaxed))) return true;
  std::size_t released = released_.load(std::memory_order_acquire);
  released_seen_.store(released, std::memory_order_relaxed);
  if (fits(released)) return true;
  charged_.fetch_sub(bytes, std::memory_order_relaxed);
  return false;
}

bool mailbox::full(std::size_t max) noexcept {
  if (!max) return false;
  std::uint32_t pushed = pushed_.load(std::memory_order_relaxed);
  if (static_cast<std::uint32_t>(pushed - taken_seen_.load(std::memory_order_relaxed)) < max)
    return false;
  std::uint32_t taken = taken_.load(std::memory_order_relaxed);
  taken_seen_.store(taken, std::memory_order_relaxed);
  return static_cast<std::uint32_t>(pushed - taken) >= max;
}

void mailbox::push(message* m) noexcept {
  if (!m->reserved) charged_.fetch_add(m->footprint(), std::memory_order_relaxed);
  pushed_.fetch_add(1, std::memory_order_relaxed);
  enqueue(m);
}

// The link is sequentially consistent: the sender then looks whether the owner
// waits (process::deliver), and the owner, having opened its wait, looks at
// the links (has_incoming); one of the two sees the other.
void mailbox::enqueue(message* m) noexcept {
  m->next.store(nullptr, std::memory_order_relaxed);
  message* prev = in_.exchange(m, std::memory_order_acq_rel);
  prev->next.store(m, std::memory_order_seq_cst);
}

// Returns a message only once its successor is linked (or the stub was put
// behind it), so no sender writes into a message after the owner has it.
// nullptr while the queue is empty, or while a sender has swapped itself in
// but not yet linked its predecessor: that sender's deliver comes right after.
message* mailbox::dequeue() noexcept {
  message* first = out_;
  message* next = first->next.load(std::memory_order_acquire);
  if (first == &stub_) {
    if (!next) return nullptr;
    out_ = first = next;
    next = next->next.load(std::memory_order_acquire);
  }
  if (!next) {
    if (first != in_.load(std::memory_order_acquire)) return nullptr;  // a sender mid-push
    enqueue(&stub_);
    next = first->next.load(std::memory_order_acquire);
    if (!next) return nullptr;
  }
  out_ = next;
  // The next take reads it: fetch it while this message is worked on.
  if (next != &stub_) __builtin_prefetch(next);
  return first;
}

void mailbox::count_taken(const message* m) noexcept {
  taken_.store(taken_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  released_.store(released_.load(std::memory_order_relaxed) + m->footprint(),
                  std::memory_order_release);
}

message* mailbox::take(std::span<const std::string_view> topics) noexcept {
  auto matches = [&](const message* m) {
    if (topics.empty()) return true;
    for (std::string_view t : topics)
      if (m->topic() == t) return true;
    return false;
  };
  // The skipped ones first: they arrived before anything still queued.
  message* prev = nullptr;
  for (message* m = skipped_; m; prev = m, m = m->next.load(std::memory_order_relaxed)) {
    if (!matches(m)) continue;
    message* after = m->next.load(std::memory_order_relaxed);
    if (prev)
      prev->next.store(after, std::memory_order_relaxed);
    else
      skipped_ = after;
    if (skipped_last_ == m) skipped_last_ = prev;
    m->next.store(nullptr, std::memory_order_relaxed);
    count_taken(m);
    return m;
  }
  while (message* m = dequeue()) {
    if (matches(m)) {
      m->next.store(nullptr, std::memory_order_relaxed);
      count_taken(m);
      return m;
    }
    m->next.store(nullptr, std::memory_order_relaxed);
    if (skipped_last_)
      skipped_last_->next.store(m, std::memory_order_relaxed);
    else
      skipped_ = m;
    skipped_last_ = m;
  }
  return nullptr;
}

}  // namespace luad::runtime
