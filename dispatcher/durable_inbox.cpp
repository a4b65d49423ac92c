// A durable run's inbox (see durable.hpp): messages recorded before they are
// received, receive steps, their timeouts, and the hand-over at continue_as_new.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <iterator>
#include <utility>

#include "dispatcher/durable.hpp"
#include "dispatcher/durable_parts.hpp"
#include "runtime/message_codec.hpp"

namespace luad::dispatcher {

using namespace durable_parts;  // (registry.hpp brings the runtime:: names)

namespace {

// A receive's topic filter (empty: any topic).
std::vector<std::string> topics_of(const value& args) {
  std::vector<std::string> out;
  const value* t = args.find("topics");
  if (const auto* list = t ? t->get<value::array>() : nullptr)
    for (const value& v : *list)
      if (const auto* s = v.get<std::string>()) out.push_back(*s);
  return out;
}

bool matches(const std::vector<std::string>& topics, const std::string& topic) {
  return topics.empty() || std::find(topics.begin(), topics.end(), topic) != topics.end();
}

// What a receive step records and answers: {seq, from, topic, payload}.
value message_value(const inbox_message& m) {
  return value(
      value::map{{"seq", m.seq}, {"from", m.sender}, {"topic", m.topic}, {"payload", m.payload}});
}

std::size_t inbox_bytes_of(const inbox_message& m) { return m.topic.size() + m.payload.size(); }

}  // namespace

// --- the inbox ----------------------------------------------------------------

// The timeout of a waiting receive: a clock.sleep's completion.
struct durable_sink::receive_timer final : completion_target {
  receive_timer(std::shared_ptr<const durable_sink> s, std::uint64_t n)
      : sink(std::move(s)), serial(n) {}
  void add_ref() noexcept override { refs.fetch_add(1, std::memory_order_relaxed); }
  void release_ref() noexcept override {
    if (refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }
  bool awaits(std::uint64_t) const noexcept override {
    std::lock_guard lock(sink->mu_);
    return sink->waiting_ && sink->waiting_->serial == serial;
  }
  void complete(std::uint64_t, outcome&& o) noexcept override {
    if (!o.err) sink->receive_timed_out(serial);
  }

  std::shared_ptr<const durable_sink> sink;
  std::uint64_t serial;
  std::atomic<int> refs{0};
};

void durable_sink::abandon() const {
  std::optional<waiting_receive> dropped;  // (destroyed after the lock)
  std::lock_guard lock(mu_);
  dropped.swap(waiting_);
}

std::vector<inbox_message> durable_sink::close_inbox() const {
  std::unique_lock lock(mu_);
  inbox_closed_ = true;
  // Those being recorded land within a commit or two (bounded: 5 s).
  recorded_cv_.wait_for(lock, std::chrono::seconds(5), [&] { return recording_ == 0; });
  std::vector<inbox_message> out(std::make_move_iterator(inbox_.begin()),
                                 std::make_move_iterator(inbox_.end()));
  inbox_.clear();
  inbox_bytes_ = 0;
  return out;
}

void durable_sink::limit_inbox(std::size_t messages, std::size_t bytes) {
  max_messages_ = messages;
  max_bytes_ = bytes;
}

void durable_sink::restore_inbox(std::vector<inbox_message> recorded) {
  std::vector<bool> received(recorded.size(), false);
  for (const journal_entry& e : history_) {
    if (e.command != command_id::workflow_value || e.failed) continue;
    std::optional<value> args = runtime::decode_value(e.args);
    if (!args || !has_kind(*args, "receive")) continue;
    std::optional<value> got = runtime::decode_value(e.result);
    const value* seq = got ? got->find("seq") : nullptr;
    const std::int64_t* n = seq ? seq->get<std::int64_t>() : nullptr;
    if (n && *n >= 0 && static_cast<std::size_t>(*n) < received.size())
      received[static_cast<std::size_t>(*n)] = true;
  }
  std::lock_guard lock(mu_);
  next_seq_ = static_cast<std::int64_t>(recorded.size());
  for (std::size_t i = 0; i < recorded.size(); ++i) {
    if (received[i]) continue;
    inbox_bytes_ += inbox_bytes_of(recorded[i]);
    inbox_.push_back(std::move(recorded[i]));
  }
}

std::optional<outcome> durable_sink::take_message(runtime::pid from, std::string_view topic,
                                                  std::string_view body,
                                                  std::function<void(outcome)> then) const {
  try {
    return take(inbox_message{run_, 0, from ? from.to_string() : std::string(), std::string(topic),
                              std::string(body), unix_now()},
                std::move(then));
  } catch (const std::bad_alloc&) {
    return outcome::failure(error{error_kind::limit, "out of memory", false, {}});
  }
}

outcome durable_sink::take_mail(inbox_message m, std::function<void(outcome)> then) const {
  m.run = run_;
  m.seq = 0;
  return take(std::move(m), std::move(then));
}

outcome durable_sink::take(inbox_message m, std::function<void(outcome)> then) const {
  try {
    {
      std::lock_guard lock(mu_);
      if (stopped_)
        return outcome::failure(
            error{error_kind::unavailable, "the durable run " + run_ + " has stopped", false, {}});
      if (inbox_closed_)
        return outcome::failure(
            error{error_kind::unavailable,
                  "the durable run " + run_ + " has continued as new: send again (to its name)",
                  true,
                  {}});
      if (max_messages_ != 0 && inbox_.size() + recording_ >= max_messages_)
        return outcome::failure(error{error_kind::limit,
                                      "the inbox of durable run " + run_ + " is full (" +
                                          std::to_string(max_messages_) + " messages)",
                                      false,
                                      {}});
      if (max_bytes_ != 0 && inbox_bytes_ + inbox_bytes_of(m) > max_bytes_)
        return outcome::failure(error{error_kind::limit,
                                      "the inbox of durable run " + run_ + " is full (" +
                                          std::to_string(max_bytes_) + " bytes)",
                                      false,
                                      {}});
      m.seq = next_seq_++;
      ++recording_;
      inbox_bytes_ += inbox_bytes_of(m);
    }
    auto self = shared_from_this();
    journal_.append_message(m, [self, m, then = std::move(then)](runtime::status st) mutable {
      std::optional<outcome> told;
      if (then) told = st ? outcome::success({}) : outcome::failure(st.error());
      self->recorded(std::move(m), std::move(st));
      if (then) then(std::move(*told));
    });
    return outcome::success({});
  } catch (const std::bad_alloc&) {
    return outcome::failure(error{error_kind::limit, "out of memory", false, {}});
  }
}

void durable_sink::recorded(inbox_message m, runtime::status st) const {
  std::optional<waiting_receive> wake;
  std::optional<inbox_message> got;
  {
    std::lock_guard lock(mu_);
    if (--recording_ == 0) recorded_cv_.notify_all();  // (close_inbox)
    if (!st) {
      inbox_bytes_ -= inbox_bytes_of(m);
    } else {
      // Callbacks come in the order of the writes: seq order.
      m.mail = 0;  // (moved: its row is gone)
      inbox_.push_back(std::move(m));
      if (waiting_ && waiting_->done.abandoned()) waiting_.reset();  // its process is gone
      if (waiting_) {
        for (auto it = inbox_.begin(); it != inbox_.end(); ++it) {
          if (!matches(waiting_->topics, it->topic)) continue;
          inbox_bytes_ -= inbox_bytes_of(*it);
          got = std::move(*it);
          inbox_.erase(it);
          wake = std::move(waiting_);
          waiting_.reset();
          break;
        }
      }
    }
  }
  if (!st) {
    stop(text_of(value::map{{"reason", "journal"}, {"message", st.error().message}}));
    return;
  }
  if (wake) answer_receive(std::move(wake->entry), std::move(wake->done), message_value(*got));
}

void durable_sink::receive_live(command&& cmd, completion&& done, std::size_t step) const {
  std::vector<std::string> topics = topics_of(cmd.args);
  const value* t = cmd.args.find("timeout");
  const double* timeout_p = t ? t->get<double>() : nullptr;
  double timeout = timeout_p ? *timeout_p : -1;
  journal_entry e = entry_for(cmd, step);
  std::optional<inbox_message> got;
  std::uint64_t serial = 0;
  {
    std::lock_guard lock(mu_);
    for (auto it = inbox_.begin(); it != inbox_.end(); ++it) {
      if (!matches(topics, it->topic)) continue;
      inbox_bytes_ -= inbox_bytes_of(*it);
      got = std::move(*it);
      inbox_.erase(it);
      break;
    }
    if (!got && timeout != 0) {
      serial = ++wait_serial_;
      waiting_ = waiting_receive{std::move(topics), e, std::move(done), serial};
    }
  }
  if (got) return answer_receive(std::move(e), std::move(done), message_value(*got));
  if (timeout == 0) return answer_receive(std::move(e), std::move(done), value());
  if (timeout > 0)
    live_.submit(command{command_id::clock_sleep, value(timeout)},
                 completion(new receive_timer(shared_from_this(), serial)));
}

void durable_sink::receive_timed_out(std::uint64_t serial) const {
  std::optional<waiting_receive> wake;
  {
    std::lock_guard lock(mu_);
    if (!waiting_ || waiting_->serial != serial) return;
    wake = std::move(waiting_);
    waiting_.reset();
  }
  answer_receive(std::move(wake->entry), std::move(wake->done), value());
}

}  // namespace luad::dispatcher
