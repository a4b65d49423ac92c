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
  /// The next message in its mailbox's queue (set by the sender that queued
  /// it), then in the owner's list of skipped messages.
  std::atomic<message*> next{nullptr};
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

/// DESIGN. An intrusive multi-producer single-consumer FIFO (Vyukov's, with a
/// stub node): a sender swaps itself in as the newest message (one exchange)
/// and links its predecessor to it; the owner follows the links oldest first,
/// reading each message once, with the next one prefetched while a turn works
/// on this one. The owner's fields and the senders' sit a cache line apart, so
/// that a receiver taking message after message and a sender pushing message
/// after message each write only their own line; the senders' limit checks
/// read the owner's counters only when a stale copy says the box may be full.
/// (Before issue 15 it was a Treiber stack that the owner swapped out and
/// reversed at every take: one walk over cold messages in arrival order that
/// no prefetch can hide, and the stack's line taken from the senders at each.)
class mailbox {
 public:
  mailbox() noexcept : out_(&stub_), in_(&stub_) {}
  ~mailbox();
  mailbox(const mailbox&) = delete;
  mailbox& operator=(const mailbox&) = delete;

  /// Appends `m` (any thread, lock-free). Messages from one sender stay in order.
  /// Charges its footprint to bytes() unless `m->reserved`.
  void push(message* m) noexcept;
  /// Charges `bytes` for a message about to be pushed, unless the queued bytes
  /// would then pass `max_bytes` (0: no bound): false, nothing charged. Any
  /// thread; exact among concurrent senders (what the owner took a moment ago
  /// may still count as queued). Undo with unreserve if the push does not happen.
  bool reserve(std::size_t bytes, std::size_t max_bytes) noexcept;
  void unreserve(std::size_t bytes) noexcept {
    charged_.fetch_sub(bytes, std::memory_order_relaxed);
  }
  /// Bytes of the queued messages (their footprints), any thread.
  std::size_t bytes() const noexcept {
    std::size_t released = released_.load(std::memory_order_acquire);
    std::size_t charged = charged_.load(std::memory_order_acquire);
    return charged >= released ? charged - released : 0;
  }
  /// True when `max` messages (0: no bound) or more are queued. Any thread;
  /// reads the owner's count only when the senders' copy of it says so.
  bool full(std::size_t max) noexcept;
  /// Owner only: frees every queued message (the process ended).
  void clear() noexcept;
  /// Owner only: true if a message arrived that take() has not looked at yet.
  bool has_incoming() const noexcept {
    return out_ != &stub_ || stub_.next.load(std::memory_order_seq_cst) != nullptr;
  }
  /// Owner only: removes and returns the oldest message whose topic is one of
  /// `topics` (any topic when empty), or nullptr. Others stay queued in order.
  message* take(std::span<const std::string_view> topics) noexcept;
  /// Owner only: messages taken so far (wraps at 2^32).
  std::uint32_t taken() const noexcept { return taken_.load(std::memory_order_relaxed); }
  /// Messages queued, from any thread (exact for the owner; others may see a
  /// push that has not finished).
  std::size_t length() const noexcept {
    // 32-bit counters: the difference is right across wrap-around.
    return static_cast<std::uint32_t>(pushed_.load(std::memory_order_relaxed) -
                                      taken_.load(std::memory_order_relaxed));
  }

 private:
  void enqueue(message* m) noexcept;  // the queue's push (any thread)
  message* dequeue() noexcept;        // the queue's oldest message, or nullptr (owner)
  void count_taken(const message* m) noexcept;

  // The owner's side.
  message* out_;                // the queue's oldest: a message not yet dequeued, or the stub
  message* skipped_ = nullptr;  // dequeued but not taken (selective receive), oldest first
  message* skipped_last_ = nullptr;
  std::atomic<std::uint32_t> taken_{0};
  std::atomic<std::size_t> released_{0};  // bytes taken; the owner writes
  // Between the two sides: the stub, which both touch only when the queue runs
  // empty, and padding to put 64 bytes between them.
  message stub_;
  char apart_[64 - sizeof(message)];
  // The senders' side.
  std::atomic<message*> in_;  // the queue's newest message, or the stub
  std::atomic<std::uint32_t> pushed_{0};
  std::atomic<std::uint32_t> taken_seen_{0};   // taken_ as a sender last read it
  std::atomic<std::size_t> charged_{0};        // bytes pushed or reserved
  std::atomic<std::size_t> released_seen_{0};  // released_ as a sender last read it
};

}  // namespace luad::runtime
