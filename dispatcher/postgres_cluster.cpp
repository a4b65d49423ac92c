// postgres_store's part in a cluster of daemons (cluster_backend.hpp): the
// node's lease row, claiming runs, the listener that wakes claimers, leaving,
// and the listing of nodes. Every lease time is the database's clock.
#include <libpq-fe.h>
#include <signal.h>
#include <spdlog/spdlog.h>

#include <boost/asio/post.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <future>
#include <random>
#include <thread>

#include "dispatcher/postgres_journal.hpp"
#include "dispatcher/postgres_store.hpp"
#include "runtime/logging.hpp"

namespace luad::dispatcher {

namespace asio = boost::asio;
using runtime::error_kind;

namespace {

// The database's time, unix seconds.
constexpr const char* k_now = "extract(epoch from clock_timestamp())::float8";
constexpr const char* k_unfinished = "('completed', 'failed', 'terminated')";
constexpr const char* k_channel = "luad_claim";

std::string live_nodes() {
  return std::string("(SELECT node FROM luad_nodes WHERE lease_until > ") + k_now +
         " AND left_at IS NULL)";
}

std::string random_instance() {
  std::random_device rd;
  std::uint64_t v = (std::uint64_t{rd()} << 32) ^ rd();
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

}  // namespace

// Runs `f` on the io thread and waits for it (never called from it).
template <class F>
static void on_io_thread(asio::io_context& io, F&& f) {
  std::promise<void> p;
  asio::post(io, [&] {
    f();
    p.set_value();
  });
  p.get_future().get();
}

runtime::status postgres_store::join(const cluster_options& o) {
  if (o.node == 0 || o.node > 65535)
    return runtime::fail(error_kind::invalid, "cluster: a node id is 1..65535");
  if (!started_) return runtime::fail(error_kind::unavailable, "cluster: the store is not open");
  std::string instance = random_instance();
  double lease = std::chrono::duration<double>(o.lease).count();
  auto deadline = std::chrono::steady_clock::now() + o.lease + std::chrono::seconds(1);
  const std::string node = std::to_string(o.node);
  bool force = false;  // the holder was this host's daemon, and it is gone
  for (;;) {
    // Take the node's row if its lease has lapsed (or it left), and release
    // the runs its previous daemon owned, in one transaction.
    pg_batch_result r = run_blocking(
        {sql(std::string("WITH j AS (INSERT INTO luad_nodes AS n VALUES ($1::int4, $2, $3, $4, ") +
                 k_now + ", " + k_now + ", " + k_now +
                 " + $5::float8, 0, $6::int8, NULL, $7::int8)" +
                 " ON CONFLICT (node) DO UPDATE SET instance = EXCLUDED.instance,"
                 " host = EXCLUDED.host, version = EXCLUDED.version, started = EXCLUDED.started,"
                 " heartbeat = EXCLUDED.heartbeat, lease_until = EXCLUDED.lease_until, load = 0,"
                 " capacity = EXCLUDED.capacity, left_at = NULL, pid = EXCLUDED.pid"
                 " WHERE $8::bool OR n.lease_until <= " +
                 k_now +
                 " OR n.left_at IS NOT NULL RETURNING node),"
                 " r AS (UPDATE luad_runs SET node = NULL WHERE node = $1::int4 AND state NOT IN " +
                 k_unfinished +
                 " AND EXISTS (SELECT 1 FROM j) RETURNING 1)"
                 " SELECT (SELECT count(*) FROM j), (SELECT count(*) FROM r),"
                 " (SELECT lease_until - " +
                 k_now +
                 " FROM luad_nodes WHERE node = $1::int4),"
                 " (SELECT host FROM luad_nodes WHERE node = $1::int4),"
                 " (SELECT pid FROM luad_nodes WHERE node = $1::int4)",
             {pg_param::text(node), pg_param::bytes(instance), pg_param::bytes(o.host),
              pg_param::bytes(o.version), pg_param::real(lease), pg_param::integer(o.capacity),
              pg_param::integer(o.pid), pg_param::text(force ? "true" : "false")}),
         sql(std::string("SELECT pg_notify('") + k_channel + "', '')")});
    if (!r) return std::move(r.error());
    const pg_rows& row = r->front();
    if (row.integer(0, 0) == 1) {
      runtime::logger().info("cluster: joined as node {} ({} runs of its last daemon released)",
                             o.node, row.integer(0, 1));
      break;
    }
    double left = row.real(0, 2);
    std::int64_t holder = row.integer(0, 4);
    if (!force && row.bytes(0, 3) == o.host && holder > 0 && holder != o.pid &&
        ::kill(static_cast<pid_t>(holder), 0) == -1 && errno == ESRCH) {
      runtime::logger().info("cluster: node {}'s last daemon (pid {} on this host) is gone", o.node,
                             holder);
      force = true;
      continue;
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      return runtime::fail(error_kind::invalid,
                           "cluster: node " + node + " is held by a running daemon on '" +
                               std::string(row.bytes(0, 3)) +
                               "' (its lease is being renewed): give each daemon its own node id");
    }
    runtime::logger().info("cluster: node {}'s lease is held ({:.1f} s left); waiting", o.node,
                           left);
    std::this_thread::sleep_for(std::chrono::milliseconds(
        std::clamp<std::int64_t>(static_cast<std::int64_t>(left * 1000), 50, 250)));
  }
  on_io_thread(io_, [&] {
    cluster_ = o;
    instance_ = instance;
  });
  // The listener: NOTIFY on luad_claim wakes this node's claimer, and on
  // luad_mail its mail (postgres_mail.cpp), as does each (re)connection,
  // which may have missed some.
  pg_session_options so{opts_.conninfo, opts_.password};
  so.on_notify = [this](std::string_view channel) {
    auto& wake = channel == mail_channel()    ? mail_wake_
                 : channel == ended_channel() ? ended_wake_
                                              : wake_;
    if (wake) wake();
  };
  listener_ = pg_session::make(io_, so);
  std::weak_ptr<pg_session> weak = listener_;
  // The wakes come once LISTEN is in place (or has failed, when the next
  // connection listens and wakes again): a wake before it let a NOTIFY sent
  // in between go unheard, with nothing to catch it but the next timer.
  listener_->start([this, weak] {
    auto l = weak.lock();
    if (!l) return;
    l->run({sql(std::string("LISTEN ") + k_channel), sql(std::string("LISTEN ") + mail_channel()),
            sql(std::string("LISTEN ") + ended_channel())},
           [this](auto) {
             for (auto* wake : {&wake_, &mail_wake_, &ended_wake_})
               if (*wake) (*wake)();
           });
  });
  return runtime::done{};
}

void postgres_store::on_claimable(std::function<void()> wake) {
  on_io_thread(io_, [&] { wake_ = std::move(wake); });
}

void postgres_store::renew(std::int64_t load, std::vector<std::string> live, lost_fn done) {
  asio::post(io_, [this, load, live = std::move(live), done = std::move(done)]() mutable {
    if (!cluster_.node || stopping_)
      return done(runtime::fail(error_kind::unavailable, "cluster: not joined"));
    pg_array ids(pg_array::of::bytea), epochs(pg_array::of::int8);
    std::vector<std::string> unknown;  // live here, but never claimed: lost
    for (const std::string& id : live) {
      auto e = owned_.find(id);
      if (e == owned_.end()) {
        unknown.push_back(id);
        continue;
      }
      ids.bytes(id);
      epochs.integer(e->second);
    }
    double lease = std::chrono::duration<double>(cluster_.lease).count();
    std::string node = std::to_string(cluster_.node);
    next_reader().run(
        {sql(std::string("UPDATE luad_nodes SET heartbeat = ") + k_now + ", lease_until = " +
                 k_now + " + $3::float8, load = $4::int8 WHERE node = $1::int4 AND instance = $2",
             {pg_param::text(node), pg_param::bytes(instance_), pg_param::real(lease),
              pg_param::integer(load)}),
         sql("SELECT l.id FROM unnest($1::bytea[], $2::int8[]) AS l(id, epoch) WHERE NOT EXISTS"
             " (SELECT 1 FROM luad_runs r WHERE r.id = l.id AND r.node = $3::int4"
             " AND r.epoch = l.epoch)",
             {ids.param(), epochs.param(), pg_param::text(node)})},
        [this, live, unknown = std::move(unknown), done](pg_batch_result r) mutable {
          if (!r) return done(std::move(r.error()));
          if ((*r)[0].affected() == 0) {
            // Another daemon joined as this node after its lease lapsed:
            // nothing here is this node's any more.
            owned_.clear();
            return done(runtime::fail(error_kind::invalid,
                                      "cluster: node " + std::to_string(cluster_.node) +
                                          " was taken over by another daemon"));
          }
          const pg_rows& lost = (*r)[1];
          for (int i = 0; i < lost.size(); ++i) {
            std::string id(lost.bytes(i, 0));
            owned_.erase(id);
            unknown.push_back(std::move(id));
          }
          done(std::move(unknown));
        });
  });
}

void postgres_store::claim(std::size_t max, std::vector<std::string> live, claimed_fn done) {
  asio::post(io_, [this, max, live = std::move(live), done = std::move(done)]() mutable {
    if (!cluster_.node || stopping_)
      return done(runtime::fail(error_kind::unavailable, "cluster: not joined"));
    if (max == 0) return done(std::vector<run_record>{});
    pg_array running_here(pg_array::of::bytea);
    for (const std::string& id : live) running_here.bytes(id);
    next_reader().run(
        {sql("WITH c AS (SELECT id FROM luad_runs WHERE state IN ('running', 'sleeping',"
             " 'waiting') AND (node IS NULL OR node NOT IN " +
                 live_nodes() +
                 ") AND id <> ALL($3::bytea[]) ORDER BY created, seq LIMIT $2::int8"
                 " FOR UPDATE SKIP LOCKED)"
                 " UPDATE luad_runs r SET node = $1::int4, epoch = r.epoch + 1 FROM c"
                 " WHERE r.id = c.id RETURNING " +
                 run_columns("r."),
             {pg_param::integer(cluster_.node), pg_param::integer(static_cast<std::int64_t>(max)),
              running_here.param()})},
        [this, done](pg_batch_result r) {
          if (!r) return done(std::move(r.error()));
          std::vector<run_record> out;
          const pg_rows& rows = r->front();
          for (int i = 0; i < rows.size(); ++i) {
            auto rec = run_on_row(rows, i);
            if (!rec) {
              runtime::logger().error("cluster: a claimed run cannot be read: {}",
                                      rec.error().message);
              continue;
            }
            owned_[rec->id] = rec->epoch;
            out.push_back(std::move(*rec));
          }
          done(std::move(out));
        });
  });
}

runtime::result<std::int64_t> postgres_store::take(const std::string& run) {
  std::uint32_t node = 0;
  on_io_thread(io_, [&] { node = cluster_.node; });
  if (!node) return runtime::fail(error_kind::unavailable, "cluster: not joined");
  pg_batch_result r = run_blocking(
      {sql("UPDATE luad_runs r SET node = $1::int4, epoch = CASE WHEN r.node = $1::int4 THEN"
           " r.epoch ELSE r.epoch + 1 END WHERE id = $2 AND (r.node IS NULL OR r.node = $1::int4"
           " OR r.node NOT IN " +
               live_nodes() + ") RETURNING epoch",
           {pg_param::integer(node), pg_param::bytes(run)}),
       sql("SELECT node FROM luad_runs WHERE id = $1", {pg_param::bytes(run)})});
  if (!r) return std::move(r.error());
  if ((*r)[1].size() == 0) return journal_no_run(run);
  if ((*r)[0].size() == 0) {
    return runtime::fail(
        error_kind::invalid,
        "run " + run + " runs on node " + std::to_string((*r)[1].integer(0, 0)) + ": do it there");
  }
  std::int64_t epoch = (*r)[0].integer(0, 0);
  on_io_thread(io_, [&] { owned_[run] = epoch; });
  return epoch;
}

void postgres_store::leave() {
  std::uint32_t node = 0;
  std::string instance;
  on_io_thread(io_, [&] {
    node = cluster_.node;
    instance = instance_;
  });
  if (!node) return;
  pg_batch_result r = run_blocking(
      {sql(std::string("UPDATE luad_runs SET node = NULL WHERE node = $1::int4 AND state NOT IN ") +
               k_unfinished,
           {pg_param::integer(node)}),
       sql(std::string("UPDATE luad_nodes SET left_at = ") + k_now + ", lease_until = " + k_now +
               ", load = 0 WHERE node = $1::int4 AND instance = $2",
           {pg_param::integer(node), pg_param::bytes(instance)}),
       sql(std::string("SELECT pg_notify('") + k_channel + "', '')")});
  if (!r) {
    runtime::logger().warn(
        "cluster: node {} could not leave cleanly ({}); its runs move once"
        " its lease lapses",
        node, r.error().message);
    return;
  }
  runtime::logger().info("cluster: node {} left; {} unfinished runs released", node,
                         r->front().affected());
}

runtime::result<std::vector<node_status>> postgres_store::nodes() {
  pg_batch_result r = run_blocking(
      {sql(std::string("SELECT node, host, version, started, heartbeat, lease_until - ") + k_now +
           ", load, capacity, left_at IS NOT NULL, (SELECT count(*) FROM luad_runs r WHERE r.node ="
           " n.node AND r.state NOT IN " +
           k_unfinished + ") FROM luad_nodes n ORDER BY node")});
  if (!r) return std::move(r.error());
  std::vector<node_status> out;
  const pg_rows& rows = r->front();
  for (int i = 0; i < rows.size(); ++i) {
    node_status n;
    n.node = static_cast<std::uint32_t>(rows.integer(i, 0));
    n.host = rows.bytes(i, 1);
    n.version = rows.bytes(i, 2);
    n.started = rows.real(i, 3);
    n.heartbeat = rows.real(i, 4);
    n.lease_left = rows.real(i, 5);
    n.load = rows.integer(i, 6);
    n.capacity = rows.integer(i, 7);
    n.left = rows.boolean(i, 8);
    n.runs = rows.integer(i, 9);
    out.push_back(std::move(n));
  }
  return out;
}

}  // namespace luad::dispatcher
