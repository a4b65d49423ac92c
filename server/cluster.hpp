// This daemon as a node of a cluster: daemons sharing one PostgreSQL
// database ([storage] backend = "postgres", [cluster]; docs/cluster.md).
//
// DESIGN. At start the node joins (dispatcher/cluster_backend.hpp: a node id
// held by a live daemon is refused) and claims every runnable run no live
// node owns, its own previous daemon's included, starting each by replay.
// Then, on the io thread: the lease is renewed every third of its length,
// and runs another node took meanwhile (this one was paused past its lease)
// end here without a word to their journals; claims run when the database
// says a run is waiting (NOTIFY) and every half lease besides, up to the
// room [cluster] max_runs leaves. At stop, once the runs' processes have
// ended, the node leaves, handing its runs to the others at once.
//
// Sends by name across nodes: the node watches the names its durable runs'
// processes register and publishes them (the last node to register a name
// holds it in the directory); send_by_name() on any node records mail for
// the run the directory names; the run's node moves its runs' mail into
// their inboxes when NOTIFY says some came, and at every renewal besides
// (mail an inbox had no room for waits there). One move pass at a time,
// each pass after the last one's moves are committed, so that no mail row
// is moved twice. Likewise workflow.wait here on a run another node runs is
// answered when the database says it ended (NOTIFY, and every renewal).
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/json.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "runtime/scheduler.hpp"
#include "server/access.hpp"
#include "server/config.hpp"
#include "server/durable_runs.hpp"
#include "server/engine.hpp"

namespace luad::server {

class cluster_member final : public runtime::name_watch {
 public:
  cluster_member(const config& cfg, engine& eng, durable_runs& runs, boost::asio::io_context& io);
  ~cluster_member();
  cluster_member(const cluster_member&) = delete;
  cluster_member& operator=(const cluster_member&) = delete;

  /// Joins and claims; throws std::runtime_error when the node cannot join
  /// (its id held by a running daemon, no database). The io thread, at start.
  void start();
  /// Stops renewing and claiming (its timers would keep the io thread
  /// running). Idempotent.
  void quiet();
  /// Leaves the cluster, handing its runs to the others: call once the
  /// runs' processes have ended. Idempotent.
  void leave();
  /// For the protocol's `cluster`: {node, nodes: [{node, host, version,
  /// started, heartbeat, lease_left, live, left, runs, load, capacity}]}.
  runtime::result<boost::json::object> status();
  /// For the stats document's `cluster`: {node, runs, claimed, lost,
  /// renew_failures, lease_seconds_left, mail_sent, mail_moved}. The io thread.
  boost::json::object counters() const;

  /// A send to `name`, which no process here has registered: to the durable
  /// run the directory names, on whichever node, if `who` may send to it
  /// (the rules of a send by name); `done` once the message is recorded
  /// (then the run receives it exactly once), or with why not: not_found,
  /// permission_denied, limit, unavailable. `done` runs on the io thread.
  void send_by_name(const actor& who, std::string name, std::string topic, std::string payload,
                    std::function<void(runtime::status)> done);

  // runtime::name_watch: the names of this node's durable runs' processes.
  void registered(const runtime::process& p, const std::string& name) override;
  void unregistered(runtime::pid id, const std::string& name) override;

 private:
  void renew();
  void claim();
  void move_mail();
  void check_waits();
  void schedule_renew();
  void schedule_claim();

  const config& cfg_;
  engine& eng_;
  durable_runs& runs_;
  boost::asio::io_context& io_;
  dispatcher::cluster_backend* backend_;
  boost::asio::steady_timer renew_timer_, claim_timer_;
  bool claiming_ = false, claim_again_ = false, stopped_ = false, left_ = false;  // io thread
  bool moving_ = false, move_again_ = false;                                      // io thread
  // Counters (io thread): runs claimed, runs lost to other nodes, renewals
  // that failed, and when the lease was last renewed.
  std::uint64_t claimed_ = 0, lost_ = 0, renew_failures_ = 0;
  std::uint64_t mail_sent_ = 0, mail_moved_ = 0;  // (io thread)
  // The names this node published: name -> (pid, run). Guarded by names_mu_
  // (name_watch calls come from workers).
  std::mutex names_mu_;
  std::unordered_map<std::string, std::pair<runtime::pid, std::string>> published_;
  std::chrono::steady_clock::time_point renewed_at_{};
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);  // for callbacks after stop
};

}  // namespace luad::server
