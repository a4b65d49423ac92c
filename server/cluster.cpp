// This daemon as a node of a cluster (cluster.hpp).
#include "server/cluster.hpp"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <boost/asio/post.hpp>

#include <stdexcept>

#include "runtime/logging.hpp"
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

cluster_member::~cluster_member() { *alive_ = false; }

void cluster_member::start() {
  if (!backend_) throw std::runtime_error("cluster: the store's database cannot be shared");
  dispatcher::cluster_options o;
  o.node = cfg_.cluster.node;
  o.lease = lease_of(cfg_);
  o.host = host_name();
  o.pid = ::getpid();
  o.capacity = static_cast<std::int64_t>(cfg_.cluster.max_runs);
  o.version = luad_version;
  if (auto ok = backend_->join(o); !ok) throw std::runtime_error(ok.error().message);
  runs_.set_cluster(*backend_, cfg_.cluster.max_runs);
  renewed_at_ = std::chrono::steady_clock::now();
  std::weak_ptr<bool> alive = alive_;
  backend_->on_claimable([this, alive] {
    asio::post(io_, [this, alive] {
      if (alive.lock()) claim();
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
  backend_->claim(std::min<std::size_t>(room, 256), [this, alive](auto got) {
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

json::object cluster_member::counters() const {
  double since =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - renewed_at_).count();
  return json::object{{"node", cfg_.cluster.node},
                      {"runs", runs_.live_ids().size()},
                      {"claimed", claimed_},
                      {"lost", lost_},
                      {"renew_failures", renew_failures_},
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
