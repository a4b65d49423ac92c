// Mailbox: a Treiber-stack inbox reversed into the owner's FIFO on collection.
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

void mailbox::clear() noexcept {
  collect();
  while (head_) {
    message* next = head_->next;
    bytes_.fetch_sub(head_->footprint(), std::memory_order_relaxed);
    taken_.fetch_add(1, std::memory_order_relaxed);
    message::destroy(head_);
    head_ = next;
  }
  tail_ = nullptr;
}

bool mailbox::reserve(std::size_t bytes, std::size_t max_bytes) noexcept {
  std::size_t before = bytes_.fetch_add(bytes, std::memory_order_relaxed);
  if (max_bytes && (before + bytes > max_bytes || before + bytes < before)) {
    bytes_.fetch_sub(bytes, std::memory_order_relaxed);
    return false;
  }
  return true;
}

void mailbox::push(message* m) noexcept {
  if (!m->reserved) bytes_.fetch_add(m->footprint(), std::memory_order_relaxed);
  pushed_.fetch_add(1, std::memory_order_relaxed);
  message* old = inbox_.load(std::memory_order_relaxed);
  do {
    m->next = old;
  } while (
      !inbox_.compare_exchange_weak(old, m, std::memory_order_seq_cst, std::memory_order_relaxed));
}

void mailbox::collect() noexcept {
  message* newest = inbox_.exchange(nullptr, std::memory_order_acquire);
  if (!newest) return;
  // Reverse to oldest first, then append to the private list.
  message* first = nullptr;
  message* last = newest;
  while (newest) {
    message* next = newest->next;
    newest->next = first;
    first = newest;
    newest = next;
  }
  if (tail_) {
    tail_->next = first;
  } else {
    head_ = first;
  }
  tail_ = last;
}

message* mailbox::take(std::span<const std::string_view> topics) noexcept {
  collect();
  message* prev = nullptr;
  for (message* m = head_; m; prev = m, m = m->next) {
    bool match = topics.empty();
    for (std::string_view t : topics) {
      if (m->topic() == t) {
        match = true;
        break;
      }
    }
    if (!match) continue;
    (prev ? prev->next : head_) = m->next;
    if (tail_ == m) tail_ = prev;
    m->next = nullptr;
    taken_.store(taken_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    bytes_.fetch_sub(m->footprint(), std::memory_order_relaxed);
    return m;
  }
  return nullptr;
}

}  // namespace luad::runtime
