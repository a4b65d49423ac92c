// A process's mailbox: a lock-free inbox any thread pushes to, and the owner's
// private FIFO that selective receive scans in arrival order.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "runtime/pid.hpp"

namespace luad::runtime {

/// One message: sender, topic and encoded payload in a single allocation.
struct message {
  message* next = nullptr;
  pid from;
  std::uint32_t topic_size = 0;
  std::uint32_t body_size = 0;
  /// Set when the sender reserved its bytes in the receiver's mailbox
  /// (mailbox::reserve): push then does not charge them again.
  bool reserved = false;

  std::string_view topic() const { return {data(), topic_size}; }
  std::string_view body() const { return {data() + topic_size, body_size}; }
  /// Bytes a message with this topic and body holds (what a mailbox charges).
  static std::size_t footprint(std::size_t topic, std::size_t body) {
    return sizeof(message) + topic + body;
  }
  std::size_t footprint() const { return footprint(topic_size, body_size); }
  /// Allocates a message holding copies of `topic` and `body`; nullptr if out of memory.
  static message* make(pid from, std::string_view topic, std::string_view body) noexcept;
  static void destroy(message* m) noexcept;

 private:
  char* data() { return reinterpret_cast<char*>(this + 1); }
  const char* data() const { return reinterpret_cast<const char*>(this + 1); }
};

class mailbox {
 public:
  mailbox() = default;
  ~mailbox();
  mailbox(const mailbox&) = delete;
  mailbox& operator=(const mailbox&) = delete;

  /// Appends `m` (any thread, lock-free). Messages from one sender stay in order.
  /// Charges its footprint to bytes() unless `m->reserved`.
  void push(message* m) noexcept;
  /// Charges `bytes` for a message about to be pushed, unless the queued bytes
  /// would then pass `max_bytes` (0: no bound): false, nothing charged. Any
  /// thread; exact under concurrent senders. Undo with unreserve if the push
  /// does not happen.
  bool reserve(std::size_t bytes, std::size_t max_bytes) noexcept;
  void unreserve(std::size_t bytes) noexcept { bytes_.fetch_sub(bytes, std::memory_order_relaxed); }
  /// Bytes of the queued messages (their footprints), any thread.
  std::size_t bytes() const noexcept { return bytes_.load(std::memory_order_relaxed); }
  /// Owner only: frees every queued message (the process ended).
  void clear() noexcept;
  /// True if something was pushed that the owner has not collected yet.
  bool has_incoming() const noexcept { return inbox_.load(std::memory_order_seq_cst) != nullptr; }
  /// Owner only: removes and returns the oldest message whose topic is one of
  /// `topics` (any topic when empty), or nullptr. Others stay queued in order.
  message* take(std::span<const std::string_view> topics) noexcept;
  /// Messages queued, from any thread (exact for the owner; others may see a
  /// push that has not finished).
  std::size_t length() const noexcept {
    // 32-bit counters: the difference is right across wrap-around.
    return static_cast<std::uint32_t>(pushed_.load(std::memory_order_relaxed) -
                                      taken_.load(std::memory_order_relaxed));
  }

 private:
  void collect() noexcept;  // moves the inbox, oldest first, to the private list

  std::atomic<message*> inbox_{nullptr};  // newest first
  message* head_ = nullptr;               // private, oldest first
  message* tail_ = nullptr;
  std::atomic<std::uint32_t> pushed_{0};
  std::atomic<std::uint32_t> taken_{0};
  std::atomic<std::size_t> bytes_{0};  // charged at push (or reserve), released at take
};

}  // namespace luad::runtime
