// What daemons sharing one database do through it (issue 16;
// docs/cluster.md): each joins as a node with a lease it renews, claims the
// durable runs that no live node owns, and is fenced off a run once another
// node has claimed it. The PostgreSQL backend implements it
// (postgres_store); a daemon on SQLite is a cluster of one and has none.
//
// DESIGN. A node's lease is its row in the database, renewed every third of
// the lease; all lease arithmetic uses the database's clock, so the nodes'
// clocks may disagree. A run row names its owner node and an epoch, bumped
// by every claim. The backend remembers the epoch of each run this node
// created or claimed, and refuses (fences) any journal write to a run whose
// row names another node or another epoch, in the write's own transaction:
// a node that was paused past its lease, and whose runs were taken, cannot
// append to them when it wakes.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "dispatcher/journal.hpp"

namespace luad::dispatcher {

/// Ends the message of a journal write refused because another node owns
/// the run now: the run's process here should end without a word to the
/// journal.
inline constexpr std::string_view fenced_marker = "(fenced: another node owns the run)";

struct cluster_options {
  std::uint32_t node = 0;  ///< 1..65535, unique among the daemons on the database
  std::chrono::milliseconds lease{10000};
  std::string host;           ///< the machine's name (listings; see join)
  std::int64_t pid = 0;       ///< this daemon's OS process id (see join)
  std::int64_t capacity = 0;  ///< durable runs this node takes at most
  std::string version;        ///< luad's version, for listings
  /// Mail that may wait for one run (post_mail); past it, `limit`.
  std::size_t max_mail = 10000;
};

/// One node as the database keeps it (luad cluster).
struct node_status {
  std::uint32_t node = 0;
  std::string host, version;
  double started = 0, heartbeat = 0;  ///< unix seconds (the database's clock)
  double lease_left = 0;              ///< seconds its lease has left; <= 0: lapsed
  std::int64_t runs = 0;              ///< unfinished durable runs it owns
  std::int64_t load = 0, capacity = 0;
  bool left = false;  ///< stopped cleanly
};

/// A name a durable run's process registered, as the cluster's directory
/// keeps it, with who may send to it (runtime::process_context's rules).
struct run_name {
  std::string run;
  std::uint32_t node = 0;               ///< where it was registered
  std::string owner;                    ///< its process's owner ("uid:N", "workflow:NAME")
  std::vector<std::string> reachable;   ///< process_context::reachable_by
  std::vector<std::string> controlled;  ///< process_context::controlled_by
  /// The largest message (topic and payload) its inbox takes: the smaller
  /// of its message_bytes and mailbox_bytes limits (0: no bound).
  std::size_t max_bytes = 0;
};

class cluster_backend {
 public:
  using claimed_fn = std::function<void(runtime::result<std::vector<run_record>>)>;
  using lost_fn = std::function<void(runtime::result<std::vector<std::string>>)>;
  using name_fn = std::function<void(runtime::result<run_name>)>;
  using mail_fn = std::function<void(runtime::result<std::vector<inbox_message>>)>;
  using status_fn = std::function<void(runtime::status)>;

  /// Joins as `o.node`. A lease still held (the node's previous daemon,
  /// killed just now, or another daemon using the same id) is waited out, up
  /// to one lease; if it is still renewed then, `invalid` ("node N is held
  /// by a running daemon"). When the holder ran on this host and its process
  /// is gone, nothing is waited for: a daemon restarted after a crash takes
  /// its node at once. The runs the node's previous daemon owned are
  /// released, for any node to claim. Blocking: the daemon's start.
  virtual runtime::status join(const cluster_options& o) = 0;
  /// Renews the lease, reporting `load` (durable runs live here). `done`
  /// gets those of `live` this node no longer owns (another node claimed
  /// them while its lease had lapsed). `done` runs on the backend's thread.
  virtual void renew(std::int64_t load, std::vector<std::string> live, lost_fn done) = 0;
  /// Claims up to `max` runs that are runnable (running, sleeping, waiting),
  /// owned by no live node, oldest first, and not among `live` (those running
  /// here): each now names this node and a new epoch. Without `live`, a node
  /// whose own lease had lapsed would claim its running runs again, and the
  /// new epoch would make a renewal already under way report them lost.
  /// `done` runs on the backend's thread.
  virtual void claim(std::size_t max, std::vector<std::string> live, claimed_fn done) = 0;
  /// `wake` runs (on the backend's thread) whenever a run may be waiting to
  /// be claimed: one was queued for any node, a node left, or the
  /// connection that listens for those came back.
  virtual void on_claimable(std::function<void()> wake) = 0;
  /// Releases this node's unfinished runs, for others to claim at once, and
  /// ends its lease. Blocking: the daemon's stop.
  virtual void leave() = 0;
  /// Makes run `run` this node's, for a resume or a terminate here: when it
  /// has no live owner (or is this node's already), it names this node and,
  /// if it was another's, a new epoch; returns the epoch. `invalid` ("runs on
  /// node N") when a live node owns it; `not_found`. Blocking.
  virtual runtime::result<std::int64_t> take(const std::string& run) = 0;
  /// Every node the database knows, by id. Blocking.
  virtual runtime::result<std::vector<node_status>> nodes() = 0;

  // Sends by name across nodes (docs/cluster.md, "Messages"). A name a
  // durable run's process registers is published in the database; a send
  // to it from another node is recorded there as mail for the run, and the
  // run's node, woken by NOTIFY (or its next renewal), moves it into the
  // run's inbox in the transaction that deletes the mail row.

  /// Publishes `name` for `who.run` on this node (a name registered again
  /// elsewhere by the same owner, after a move, takes the row over; one
  /// another owner's run holds stays its: the name is then this node's
  /// only). Asynchronous; a failure is logged. Calls from one thread keep
  /// their order with withdraw_name.
  virtual void publish_name(std::string name, run_name who) = 0;
  /// Forgets `name` if it still names `run` on this node. Asynchronous.
  virtual void withdraw_name(std::string name, std::string run) = 0;
  /// What `name` names; not_found when no durable run's process has it.
  /// `done` runs on the backend's thread.
  virtual void find_name(std::string name, name_fn done) = 0;
  /// Records `m` (run, sender, topic, payload) as mail for run `m.run` and
  /// wakes the nodes; `done` once it is committed: then the run receives it
  /// exactly once. `unavailable` (retryable) when the run is not running
  /// (it ended, or continued as new: send again); `limit` when
  /// cluster_options::max_mail wait for it already.
  virtual void post_mail(inbox_message m, status_fn done) = 0;
  /// Up to `max` mail rows for `runs`, oldest first, each with `mail` (its
  /// row's id) set. `done` runs on the backend's thread.
  virtual void mail_for(std::vector<std::string> runs, std::size_t max, mail_fn done) = 0;
  /// `wake` runs (on the backend's thread) when mail may have come: a
  /// NOTIFY, or the listening connection came back.
  virtual void on_mail(std::function<void()> wake) = 0;
  /// Those of `runs` that have ended (completed, failed, terminated), as
  /// stored: for workflow.wait on a run another node ran. `done` runs on
  /// the backend's thread.
  virtual void ended_runs(std::vector<std::string> runs, claimed_fn done) = 0;
  /// `wake` runs (on the backend's thread) when a run may have ended on
  /// some node (a NOTIFY), or the listening connection came back.
  virtual void on_ended(std::function<void()> wake) = 0;
  /// Run `run`'s final state is written: its names are forgotten, and its
  /// mail goes to run `next` (it continued as new) or, when `next` is "",
  /// is dropped. Asynchronous.
  virtual void run_ended(std::string run, std::string next) = 0;

 protected:
  ~cluster_backend() = default;
};

}  // namespace luad::dispatcher
