// Exits, waiters, the log backlog, subscriptions and exit continuations
// (events.hpp).
#include "server/events.hpp"

#include <boost/asio/post.hpp>

#include <algorithm>
#include <utility>

#include "proto/json_rpc.hpp"
#include "server/connection.hpp"

namespace luad::server {

namespace asio = boost::asio;
namespace json = boost::json;

namespace {

std::size_t value_footprint(const runtime::value& v) {
  std::size_t n = sizeof(runtime::value);
  if (const auto* s = v.get<std::string>()) n += s->capacity();
  if (const auto* a = v.get<runtime::value::array>()) {
    for (const runtime::value& item : *a) n += value_footprint(item);
  }
  if (const auto* m = v.get<runtime::value::map>()) {
    for (const auto& [key, item] : *m)
      n += sizeof(std::string) + key.capacity() + value_footprint(item);
  }
  return n;
}

}  // namespace

std::size_t events::exit_footprint(const runtime::exit_info& e) {
  constexpr std::size_t k_node = 64;  // the hash node and the order entry
  std::size_t n =
      sizeof(runtime::exit_info) + k_node + e.err.message.capacity() + e.err.traceback.capacity();
  for (const runtime::value& v : e.results) n += value_footprint(v);
  return n;
}

events::kept events::kept_now() {
  std::lock_guard lock(mu_);
  return {exits_.size(), exit_bytes_, log_backlog_.size(), log_bytes_};
}

void events::on_submitted_exit(const runtime::exit_info& e) {  // a worker thread
  std::vector<waiter> ready;
  {
    std::size_t bytes = exit_footprint(e);
    std::lock_guard lock(mu_);
    exits_[e.id.serial] = e;
    exit_order_.emplace_back(e.id.serial, bytes);
    exit_bytes_ += bytes;
    // Forget the oldest past either bound (the newest stays).
    while (exit_order_.size() > 1 && ((bounds_.exits && exit_order_.size() > bounds_.exits) ||
                                      (bounds_.exit_bytes && exit_bytes_ > bounds_.exit_bytes))) {
      exits_.erase(exit_order_.front().first);
      exit_bytes_ -= exit_order_.front().second;
      exit_order_.pop_front();
    }
    auto it = waiters_.find(e.id.serial);
    if (it != waiters_.end()) {
      ready = std::move(it->second);
      waiters_.erase(it);
    }
  }
  if (ready.empty()) return;
  asio::post(io_, [ready = std::move(ready), result = json::value(proto::exit_json(e))] {
    for (const waiter& w : ready)
      if (auto c = w.conn.lock()) c->finish_deferred(w.id, result);
  });
}

void events::on_any_exit(const runtime::exit_info& e) {  // a worker thread
  run_continuations(e.id.serial);
  // The subscriber counts itself before it finds the process in the table;
  // this runs after the process left the table. If its look-up found the
  // process, the table's lock orders its count before this load.
  if (subscriptions_.load() == 0) return;
  std::vector<subscriber> followers;
  {
    std::lock_guard lock(mu_);
    auto it = subscribers_.find(e.id.serial);
    if (it == subscribers_.end()) return;
    followers = std::move(it->second);
    subscribers_.erase(it);
    subscriptions_.fetch_sub(followers.size());
  }
  asio::post(io_, [followers = std::move(followers), params = json::value(proto::exit_json(e))] {
    for (const auto& f : followers)
      if (auto c = f.conn.lock()) c->notify("exit", params, false);
  });
}

// Takes the continuations waiting for `serial` (if nobody took them first)
// and posts them to the io thread. Also called by after_exit itself.
void events::run_continuations(std::uint64_t serial) {
  if (continuation_count_.load() == 0) return;  // (ordered as subscriptions_ is)
  std::vector<std::function<void()>> ready;
  {
    std::lock_guard lock(mu_);
    auto it = continuations_.find(serial);
    if (it == continuations_.end()) return;
    ready = std::move(it->second);
    continuations_.erase(it);
    continuation_count_.fetch_sub(ready.size());
  }
  asio::post(io_, [ready = std::move(ready)] {
    for (const auto& then : ready) then();
  });
}

void events::after_exit(runtime::pid id, runtime::scheduler& sched, std::function<void()> then) {
  {
    std::lock_guard lock(mu_);
    continuations_[id.serial].push_back(std::move(then));
  }
  continuation_count_.fetch_add(1);  // before the look-up: see on_any_exit
  if (runtime::process* proc = sched.find(id)) {
    proc->release_ref();  // its exit hook will run them
    return;
  }
  run_continuations(id.serial);  // gone already (unless its hook took them)
}

runtime::result<std::optional<json::object>> events::exit_or_wait(
    runtime::pid id, std::weak_ptr<connection> conn, const json::value& request_id,
    const std::function<bool()>& alive) {
  std::lock_guard lock(mu_);
  if (auto it = exits_.find(id.serial); it != exits_.end())
    return std::optional<json::object>(proto::exit_json(it->second));
  if (!alive())
    return runtime::fail(runtime::error_kind::not_found,
                         "no process " + id.to_string() + " (or its exit is forgotten)");
  waiters_[id.serial].push_back({std::move(conn), request_id});
  return std::optional<json::object>();
}

runtime::result<json::object> events::subscribe(runtime::pid id, std::weak_ptr<connection> conn,
                                                bool logs, bool backlog, runtime::log_level level,
                                                runtime::scheduler& sched) {
  std::lock_guard lock(mu_);
  json::array past;
  if (backlog && logs)
    for (const log_line& line : log_backlog_)
      if (line.serial == id.serial && line.level >= level) past.push_back(log_json(line));
  json::object result{{"pid", id.to_string()}, {"backlog", std::move(past)}};
  // Counted before looking the process up, so that its exit hook, which
  // runs after the process left the table, cannot miss this subscriber.
  subscriptions_.fetch_add(1);
  runtime::process* proc = sched.find(id);
  if (!proc) {
    subscriptions_.fetch_sub(1);
    auto it = exits_.find(id.serial);
    if (it == exits_.end())
      return runtime::fail(runtime::error_kind::not_found,
                           "no process " + id.to_string() + " (or its exit is forgotten)");
    result["exit"] = proto::exit_json(it->second);
    return result;
  }
  proc->release_ref();
  subscribers_[id.serial].push_back({std::move(conn), logs, level});
  result["subscribed"] = true;
  return result;
}

std::optional<std::string> events::exit_owner(runtime::pid id) {
  std::lock_guard lock(mu_);
  auto it = exits_.find(id.serial);
  if (it == exits_.end()) return std::nullopt;
  return it->second.owner;
}

bool events::unsubscribe(runtime::pid id, const std::weak_ptr<connection>& conn) {
  std::lock_guard lock(mu_);
  auto it = subscribers_.find(id.serial);
  if (it == subscribers_.end()) return false;
  auto& subs = it->second;
  auto gone = std::remove_if(subs.begin(), subs.end(), [&](const subscriber& s) {
    return !s.conn.owner_before(conn) && !conn.owner_before(s.conn);
  });
  bool had = gone != subs.end();
  subscriptions_.fetch_sub(static_cast<std::size_t>(subs.end() - gone));
  subs.erase(gone, subs.end());
  if (subs.empty()) subscribers_.erase(it);
  return had;
}

void events::log_tap::on_log(const runtime::log_record& rec) noexcept {
  try {
    owner->record_log(rec);
  } catch (...) {
    // Out of memory: the line still reaches stderr; only followers miss it.
  }
}

void events::record_log(const runtime::log_record& rec) {  // a worker thread
  log_line line{rec.pid_serial,
                std::string(rec.pid),
                std::string(rec.workflow),
                runtime::utc_timestamp(std::chrono::system_clock::now()),
                std::string(rec.message.substr(0, log_message_bytes)),
                std::string(rec.fields.substr(0, log_message_bytes)),
                rec.level};
  if (rec.message.size() > log_message_bytes) line.message += "...(truncated)";
  std::vector<std::weak_ptr<connection>> followers;
  {
    std::lock_guard lock(mu_);
    if (auto it = subscribers_.find(rec.pid_serial); it != subscribers_.end())
      for (const subscriber& s : it->second)
        if (s.logs && rec.level >= s.level) followers.push_back(s.conn);
    if (rec.level >= backlog_level_) {
      log_backlog_.push_back(line);
      log_bytes_ += log_backlog_.back().bytes();
      while (log_backlog_.size() > 1 &&
             ((bounds_.log_lines && log_backlog_.size() > bounds_.log_lines) ||
              (bounds_.log_bytes && log_bytes_ > bounds_.log_bytes))) {
        log_bytes_ -= log_backlog_.front().bytes();
        log_backlog_.pop_front();
      }
    }
  }
  if (followers.empty()) return;
  asio::post(io_, [followers = std::move(followers), params = json::value(log_json(line))] {
    for (const auto& f : followers)
      if (auto c = f.lock()) c->notify("log", params, true);
  });
}

json::object events::log_json(const log_line& line) {
  json::object o{{"pid", line.pid},
                 {"time", line.time},
                 {"level", runtime::level_name(line.level)},
                 {"message", line.message}};
  if (!line.workflow.empty()) o["workflow"] = line.workflow;
  if (!line.fields.empty()) {
    boost::system::error_code ec;
    json::value f = json::parse(line.fields, ec);
    o["fields"] = ec ? json::value(json::string(line.fields)) : std::move(f);
  }
  return o;
}

}  // namespace luad::server
