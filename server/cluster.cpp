// This daemon as a node of a cluster (cluster.hpp).
#include "server/cluster.hpp"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <boost/asio/post.hpp>

#include <set>
#include <stdexcept>

#include "dispatcher/durable.hpp"
#include "runtime/logging.hpp"
#include "runtime/owners.hpp"
#include "runtime/process.hpp"
#include "server/daemon.hpp"

namespace luad::server {

namespace asio = boost::asio;
namespace json = boost::json;

namespace {

std::chrono::milliseconds lease_of(const config& cfg) {
  return std::chrono::milliseconds(static_cast<std::int64_t>(cfg.cluster.lease * 1000));
}

std::string host_name() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0) return "?";
  return buf;
}

}  // namespace

cluster_member::cluster_member(const config& cfg, engine& eng, durable_runs& runs,
                               asio::io_context& io)
    : cfg_(cfg),
      eng_(eng),
      runs_(runs),
      io_(io),
      backend_(eng.storage().cluster()),
      renew_timer_(io),
      claim_timer_(io) {}

cluster_member::~cluster_member() {
  *alive_ = false;
  eng_.scheduler().watch_names(nullptr);
}

void cluster_member::start() {
  if (!backend_) throw std::runtime_error("cluster: the store's database cannot be shared");
  dispatcher::cluster_options o;
  o.node = cfg_.cluster.node;
  o.lease = lease_of(cfg_);
  o.host = host_name();
  o.pid = ::getpid();
  o.capacity = static_cast<std::int64_t>(cfg_.cluster.max_runs);
  o.version = luad_version;
  o.max_mail = cfg_.cluster.max_mail;
  if (auto ok = backend_->join(o); !ok) throw std::runtime_error(ok.error().message);
  runs_.set_cluster(*backend_, cfg_.cluster.max_runs);
  eng_.scheduler().watch_names(this);
  renewed_at_ = std::chrono::steady_clock::now();
  std::weak_ptr<bool> alive = alive_;
  backend_->on_claimable([this, alive] {
    asio::post(io_, [this, alive] {
      if (alive.lock()) claim();
    });
  });
  backend_->on_mail([this, alive] {
    asio::post(io_, [this, alive] {
      if (alive.lock()) move_mail();
    });
  });
  backend_->on_ended([this, alive] {
    asio::post(io_, [this, alive] {
      if (alive.lock()) check_waits();
    });
  });
  claim();  // its previous daemon's runs, and any no live node owns
  schedule_renew();
  schedule_claim();
}

void cluster_member::quiet() {
  stopped_ = true;
  renew_timer_.cancel();
  claim_timer_.cancel();
}

void cluster_member::leave() {
  quiet();
  if (left_ || !backend_) return;
  left_ = true;
  backend_->leave();
}

void cluster_member::schedule_renew() {
  renew_timer_.expires_after(lease_of(cfg_) / 3);
  renew_timer_.async_wait([this](boost::system::error_code ec) {
    if (!ec && !stopped_) renew();
  });
}

void cluster_member::schedule_claim() {
  claim_timer_.expires_after(lease_of(cfg_) / 2);
  claim_timer_.async_wait([this](boost::system::error_code ec) {
    if (ec || stopped_) return;
    claim();
    schedule_claim();
  });
}

void cluster_member::renew() {
  std::vector<std::string> live = runs_.live_ids();
  auto load = static_cast<std::int64_t>(live.size());
  std::weak_ptr<bool> alive = alive_;
  backend_->renew(load, std::move(live), [this, alive](auto lost) {
    asio::post(io_, [this, alive, lost = std::move(lost)] {
      if (!alive.lock() || stopped_) return;
      if (!lost) {
        ++renew_failures_;
        runtime::logger().warn("cluster: node {}: the lease was not renewed: {}", cfg_.cluster.node,
                               lost.error().message);
        if (lost.error().kind == runtime::error_kind::invalid) {  // taken over: nothing is ours
          auto all = runs_.live_ids();
          lost_ += all.size();
          runs_.drop_lost(all);
        }
      } else {
        renewed_at_ = std::chrono::steady_clock::now();
        lost_ += lost->size();
        if (!lost->empty()) runs_.drop_lost(*lost);
      }
      move_mail();    // (mail that found no room in an inbox, or a NOTIFY missed)
      check_waits();  // (an end whose NOTIFY was missed)
      schedule_renew();
    });
  });
}

void cluster_member::claim() {
  if (stopped_) return;
  if (claiming_) {  // one claim at a time; one more after it if woken meanwhile
    claim_again_ = true;
    return;
  }
  std::size_t room = runs_.room();
  if (room == 0) return;
  claiming_ = true;
  std::weak_ptr<bool> alive = alive_;
  backend_->claim(std::min<std::size_t>(room, 256), runs_.live_ids(), [this, alive](auto got) {
    asio::post(io_, [this, alive, got = std::move(got)] {
      if (!alive.lock()) return;
      claiming_ = false;
      if (!got) {
        runtime::logger().warn("cluster: claiming runs failed: {}", got.error().message);
      } else if (!stopped_) {
        claimed_ += got->size();
        runs_.adopt(*got);
        if (got->size() == 256) claim_again_ = true;  // maybe more waiting
      }
      if (claim_again_) {
        claim_again_ = false;
        claim();
      }
    });
  });
}

// --- sends by name across nodes -------------------------------------------------

void cluster_member::registered(const runtime::process& p, const std::string& name) {
  const auto* sink = dynamic_cast<const dispatcher::durable_sink*>(p.own_sink());
  if (!sink) return;  // only durable runs' names are the cluster's
  try {
    const runtime::process_context& ctx = p.context();
    std::size_t max = ctx.limits.message_bytes;
    if (ctx.limits.mailbox_bytes != 0 && (max == 0 || ctx.limits.mailbox_bytes < max))
      max = ctx.limits.mailbox_bytes;
    dispatcher::run_name who{sink->run(),      cfg_.cluster.node, ctx.owner,
                             ctx.reachable_by, ctx.controlled_by, max};
    {
      std::lock_guard lock(names_mu_);
      published_[name] = {p.id(), who.run};
    }
    backend_->publish_name(name, std::move(who));
  } catch (const std::exception& e) {  // (out of memory: the name stays local)
    runtime::logger().warn("cluster: the name '{}' was not published: {}", name, e.what());
  }
}

void cluster_member::unregistered(runtime::pid id, const std::string& name) {
  std::string run;
  {
    std::lock_guard lock(names_mu_);
    auto it = published_.find(name);
    if (it == published_.end() || it->second.first != id) return;
    run = std::move(it->second.second);
    published_.erase(it);
  }
  backend_->withdraw_name(name, std::move(run));
}

void cluster_member::send_by_name(const actor& who, std::string name, std::string topic,
                                  std::string payload, std::function<void(runtime::status)> done) {
  std::weak_ptr<bool> alive = alive_;
  // Answers on the io thread, counting what was sent.
  auto answer = [this, alive, done = std::move(done)](runtime::status s) {
    asio::post(io_, [this, alive, done, s = std::move(s)] {
      if (alive.lock() && s) ++mail_sent_;
      done(s);
    });
  };
  backend_->find_name(name, [this, who, topic = std::move(topic), payload = std::move(payload),
                             answer = std::move(answer)](auto found) mutable {
    if (!found) return answer(found.error());
    // The rules of a send by name to a process of that owner.
    runtime::process_context ctx;
    ctx.owner = found->owner;
    ctx.reachable_by = found->reachable;
    ctx.controlled_by = found->controlled;
    if (auto ok = may_act(who, ctx, runtime::verb_of_topic(topic), true); !ok)
      return answer(ok.error());
    // Its inbox would never take it: refused now, not left in the way.
    if (std::size_t size = topic.size() + payload.size();
        found->max_bytes && size > found->max_bytes)
      return answer(runtime::fail(runtime::error_kind::limit,
                                  "a message of " + std::to_string(size) +
                                      " bytes is more than "
                                      "durable run " +
                                      found->run + " takes (" + std::to_string(found->max_bytes) +
                                      " bytes)"));
    dispatcher::inbox_message m;
    m.run = found->run;
    m.topic = std::move(topic);
    m.payload = std::move(payload);
    backend_->post_mail(std::move(m), std::move(answer));
  });
}

// One pass: this node's runs' mail, moved into their inboxes; the next pass
// starts only once this one's moves are committed (or refused).
void cluster_member::move_mail() {
  if (stopped_) return;
  if (moving_) {
    move_again_ = true;
    return;
  }
  std::vector<std::string> live = runs_.live_ids();
  if (live.empty()) return;
  moving_ = true;
  constexpr std::size_t k_pass = 1000;
  std::weak_ptr<bool> alive = alive_;
  backend_->mail_for(std::move(live), k_pass, [this, alive](auto got) {
    asio::post(io_, [this, alive, got = std::move(got)]() mutable {
      if (!alive.lock()) return;
      if (!got) {
        runtime::logger().warn("cluster: reading mail failed: {}", got.error().message);
        moving_ = false;
        return;
      }
      if (got->size() == k_pass) move_again_ = true;  // maybe more
      // Each run's mail in order: after one that cannot go in now (a full
      // inbox), the rest of that run's wait for a later pass.
      auto left = std::make_shared<std::size_t>(1);  // (1: this loop's own)
      auto one_done = [this, alive, left] {
        if (--*left != 0 || !alive.lock()) return;
        moving_ = false;
        if (move_again_ && !stopped_) {
          move_again_ = false;
          move_mail();
        }
      };
      std::set<std::string> held;
      for (dispatcher::inbox_message& m : *got) {
        if (held.count(m.run)) continue;
        std::string run = m.run;
        ++*left;
        runtime::outcome now =
            runs_.deliver_mail(std::move(m), [this, alive, one_done](runtime::outcome o) {
              asio::post(io_, [this, alive, one_done, ok = !o.err] {
                if (!alive.lock()) return;
                if (ok) ++mail_moved_;
                one_done();
              });
            });
        if (now.err) {  // answered at once: no callback comes
          held.insert(std::move(run));
          one_done();
        }
      }
      one_done();
    });
  });
}

// workflow.wait here on runs that run (or ran) on other nodes: answered once
// the database has their end.
void cluster_member::check_waits() {
  if (stopped_) return;
  std::vector<std::string> waited = runs_.waited_elsewhere();
  if (waited.empty()) return;
  std::weak_ptr<bool> alive = alive_;
  backend_->ended_runs(std::move(waited), [this, alive](auto ended) {
    asio::post(io_, [this, alive, ended = std::move(ended)] {
      if (!alive.lock()) return;
      if (!ended)
        runtime::logger().warn("cluster: reading runs waited for failed: {}",
                               ended.error().message);
      else
        runs_.ended_elsewhere(*ended);
    });
  });
}

json::object cluster_member::counters() const {
  double since =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - renewed_at_).count();
  return json::object{{"node", cfg_.cluster.node},
                      {"runs", runs_.live_ids().size()},
                      {"claimed", claimed_},
                      {"lost", lost_},
                      {"renew_failures", renew_failures_},
                      {"mail_sent", mail_sent_},
                      {"mail_moved", mail_moved_},
                      {"lease_seconds_left", cfg_.cluster.lease - since}};
}

runtime::result<json::object> cluster_member::status() {
  auto nodes = backend_->nodes();
  if (!nodes) return nodes.error();
  json::array list;
  for (const auto& n : *nodes) {
    list.push_back(json::object{{"node", n.node},
                                {"host", n.host},
                                {"version", n.version},
                                {"started", n.started},
                                {"heartbeat", n.heartbeat},
                                {"lease_left", n.lease_left},
                                {"live", !n.left && n.lease_left > 0},
                                {"left", n.left},
                                {"runs", n.runs},
                                {"load", n.load},
                                {"capacity", n.capacity}});
  }
  return json::object{{"node", cfg_.cluster.node}, {"nodes", std::move(list)}};
}

}  // namespace luad::server
