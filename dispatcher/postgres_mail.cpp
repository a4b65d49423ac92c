// postgres_store's part in sends by name across nodes (cluster_backend.hpp):
// the directory of names durable runs' processes registered (luad_names),
// and mail, messages recorded for a run on another node until its node
// moves them into the run's inbox (luad_mail; the move is the journal's,
// postgres_journal.cpp); and which runs waited for on this node have ended
// on another (NOTIFY luad_ended, also sent by the journal's batches).
//
// DESIGN. The directory's writes and the mail go through one reader
// session, so one daemon's publish and withdraw of a name keep their order.
// A post is one pipeline, hence one implicit transaction: it takes the
// run's advisory lock (the one every journal batch writing that run takes),
// then reads the run's state and inserts the row only if the run still
// runs. A run whose final state is being written therefore either gets the
// mail before that state commits (and run_ended moves or drops it), or
// refuses it after: no mail is left behind for a run that will not take it.
#include <spdlog/spdlog.h>

#include <boost/asio/post.hpp>

#include <string>
#include <utility>

#include "dispatcher/postgres_journal.hpp"
#include "dispatcher/postgres_store.hpp"
#include "runtime/logging.hpp"

namespace luad::dispatcher {

namespace asio = boost::asio;
using runtime::error_kind;

namespace {

constexpr const char* k_mail_channel = "luad_mail";
constexpr const char* k_runnable = "('running', 'sleeping', 'waiting')";
constexpr std::int64_t k_mail_pass_bytes = std::int64_t{8} << 20;

// Owner lists travel as one bytea, NUL-separated (an owner never holds a NUL).
std::string joined(const std::vector<std::string>& list) {
  std::string out;
  for (const std::string& s : list) {
    if (!out.empty()) out.push_back('\0');
    out += s;
  }
  return out;
}

std::vector<std::string> split(std::string_view text) {
  std::vector<std::string> out;
  if (text.empty()) return out;
  std::size_t from = 0;
  while (true) {
    std::size_t at = text.find('\0', from);
    out.emplace_back(text.substr(from, at == std::string_view::npos ? at : at - from));
    if (at == std::string_view::npos) return out;
    from = at + 1;
  }
}

}  // namespace

const char* postgres_store::mail_channel() { return k_mail_channel; }
const char* postgres_store::ended_channel() { return "luad_ended"; }  // (postgres_journal.cpp)

pg_session& postgres_store::directory() { return *readers_.front(); }

// Runs `batch` on the directory's session once the store is up; a failure
// is logged as `what` (no one waits for these).
void postgres_store::directory_write(std::vector<pg_statement> batch, std::string what) {
  if (!started_ || stopping_) return;
  directory().run(std::move(batch), [what = std::move(what)](pg_batch_result r) {
    if (!r.ok()) runtime::logger().warn("cluster: {}: {}", what, r.error().message);
  });
}

void postgres_store::publish_name(std::string name, run_name who) {
  // (On the io thread, which owns cluster_.)
  asio::post(io_, [this, name = std::move(name), who = std::move(who)] {
    if (!started_ || stopping_) return;
    // A row of another owner stays: names are owned, as on one daemon, so
    // a run cannot take over a name another owner's run holds elsewhere
    // and receive its messages. The row of the same owner is taken over
    // (the run moved, or continued as new).
    directory().run(
        {sql("INSERT INTO luad_names VALUES ($1, $2, $3::int4, $4, $5, $6, $7::int8)"
             " ON CONFLICT (name) DO UPDATE SET run = EXCLUDED.run, node = EXCLUDED.node,"
             " reachable = EXCLUDED.reachable, controlled = EXCLUDED.controlled,"
             " max_bytes = EXCLUDED.max_bytes WHERE luad_names.owner = EXCLUDED.owner"
             " RETURNING run",
             {pg_param::bytes(name), pg_param::bytes(who.run), pg_param::integer(cluster_.node),
              pg_param::bytes(who.owner), pg_param::bytes(joined(who.reachable)),
              pg_param::bytes(joined(who.controlled)),
              pg_param::integer(static_cast<std::int64_t>(who.max_bytes))})},
        [name, run = who.run](pg_batch_result r) {
          if (!r.ok())
            runtime::logger().warn("cluster: the name of run {} was not published: {}", run,
                                   r.error().message);
          else if (r->front().size() == 0)
            runtime::logger().warn(
                "cluster: the name '{}' of run {} is held by another owner's run in the"
                " cluster: it names the run on this node only",
                name, run);
        });
  });
}

void postgres_store::withdraw_name(std::string name, std::string run) {
  asio::post(io_, [this, name = std::move(name), run = std::move(run)] {
    directory_write(
        {sql("DELETE FROM luad_names WHERE name = $1 AND run = $2 AND node = $3::int4",
             {pg_param::bytes(name), pg_param::bytes(run), pg_param::integer(cluster_.node)})},
        "the name of run " + run + " was not withdrawn");
  });
}

void postgres_store::find_name(std::string name, name_fn done) {
  if (!started_ || stopping_)
    return done(runtime::fail(error_kind::unavailable, "cluster: the store is not open", true));
  directory().run(
      {sql("SELECT run, node, owner, reachable, controlled, max_bytes FROM luad_names"
           " WHERE name = $1",
           {pg_param::bytes(name)})},
      [name, done = std::move(done)](pg_batch_result r) {
        if (!r.ok()) return done(std::move(r.error()));
        const pg_rows& rows = r->front();
        if (rows.size() == 0)
          return done(runtime::fail(error_kind::not_found, "no process or name '" + name + "'"));
        run_name n;
        n.run = rows.bytes(0, 0);
        n.node = static_cast<std::uint32_t>(rows.integer(0, 1));
        n.owner = rows.bytes(0, 2);
        n.reachable = split(rows.bytes(0, 3));
        n.controlled = split(rows.bytes(0, 4));
        n.max_bytes = static_cast<std::size_t>(rows.integer(0, 5));
        done(std::move(n));
      });
}

void postgres_store::post_mail(inbox_message m, status_fn done) {
  if (!started_ || stopping_)
    return done(runtime::fail(error_kind::unavailable, "cluster: the store is not open", true));
  asio::post(io_, [this, m = std::move(m), done = std::move(done)]() mutable {
    post_mail_now(std::move(m), std::move(done));
  });
}

void postgres_store::post_mail_now(inbox_message m, status_fn done) {
  std::string run = m.run;
  auto max_mail = static_cast<std::int64_t>(cluster_.max_mail);
  directory().run(
      {sql("SELECT pg_advisory_xact_lock(hashtextextended('r' || encode($1::bytea, 'hex'), 0))",
           {pg_param::bytes(run)}),
       sql("SELECT state, (SELECT count(*) FROM luad_mail WHERE run = $1) FROM luad_runs"
           " WHERE id = $1",
           {pg_param::bytes(run)}),
       sql(std::string("INSERT INTO luad_mail (run, sender, topic, payload, at) SELECT id, $2, $3,"
                       " $4, extract(epoch from clock_timestamp())::float8 FROM luad_runs"
                       " WHERE id = $1 AND state IN ") +
               k_runnable + " AND (SELECT count(*) FROM luad_mail WHERE run = $1) < $5::int8",
           {pg_param::bytes(run), pg_param::bytes(m.sender), pg_param::bytes(m.topic),
            pg_param::bytes(m.payload), pg_param::integer(max_mail)}),
       sql(std::string("SELECT pg_notify('") + k_mail_channel + "', '')")},
      [run, max_mail, done = std::move(done)](pg_batch_result r) {
        if (!r.ok()) return done(std::move(r.error()));
        if ((*r)[2].affected() == 1) return done(runtime::done{});
        const pg_rows& found = (*r)[1];
        if (found.size() == 0)
          return done(runtime::fail(error_kind::not_found, "no durable run " + run));
        std::string state(found.bytes(0, 0));
        if (found.integer(0, 1) >= max_mail)
          return done(runtime::fail(error_kind::limit, "the mail of durable run " + run +
                                                           " is full (" + std::to_string(max_mail) +
                                                           " messages not yet received)"));
        done(runtime::fail(error_kind::unavailable,
                           "the durable run " + run + " is " + state + ", not running: send again",
                           true));
      });
}

void postgres_store::mail_for(std::vector<std::string> runs, std::size_t max, mail_fn done) {
  if (!started_ || stopping_)
    return done(runtime::fail(error_kind::unavailable, "cluster: the store is not open", true));
  pg_array ids(pg_array::of::bytea);
  for (const std::string& id : runs) ids.bytes(id);
  // At most `max` rows, and about k_mail_pass_bytes: a pass holds no more
  // than that in memory, whatever the messages' sizes (one row at least).
  next_reader().run({sql("SELECT id, run, sender, topic, payload, at FROM (SELECT *,"
                         " sum(length(topic) + length(payload)) OVER (ORDER BY id) AS upto"
                         " FROM luad_mail WHERE run = ANY($1::bytea[]) ORDER BY id"
                         " LIMIT $2::int8) m"
                         " WHERE upto - length(topic) - length(payload) < $3::int8 ORDER BY id",
                         {ids.param(), pg_param::integer(static_cast<std::int64_t>(max)),
                          pg_param::integer(k_mail_pass_bytes)})},
                    [done = std::move(done)](pg_batch_result r) {
                      if (!r.ok()) return done(std::move(r.error()));
                      const pg_rows& rows = r->front();
                      std::vector<inbox_message> out;
                      out.reserve(static_cast<std::size_t>(rows.size()));
                      for (int i = 0; i < rows.size(); ++i) {
                        inbox_message m;
                        m.mail = rows.integer(i, 0);
                        m.run = rows.bytes(i, 1);
                        m.sender = rows.bytes(i, 2);
                        m.topic = rows.bytes(i, 3);
                        m.payload = rows.bytes(i, 4);
                        m.at = rows.real(i, 5);
                        out.push_back(std::move(m));
                      }
                      done(std::move(out));
                    });
}

void postgres_store::on_mail(std::function<void()> wake) {
  asio::post(io_, [this, wake = std::move(wake)]() mutable { mail_wake_ = std::move(wake); });
}

void postgres_store::run_ended(std::string run, std::string next) {
  std::vector<pg_statement> batch{
      sql("DELETE FROM luad_names WHERE run = $1", {pg_param::bytes(run)})};
  if (next.empty()) {
    batch.push_back(sql("DELETE FROM luad_mail WHERE run = $1", {pg_param::bytes(run)}));
  } else {
    batch.push_back(sql("UPDATE luad_mail SET run = $2 WHERE run = $1",
                        {pg_param::bytes(run), pg_param::bytes(next)}));
    batch.push_back(sql(std::string("SELECT pg_notify('") + k_mail_channel + "', '')"));
  }
  directory_write(std::move(batch), "the names and mail of run " + run + " were not cleared");
}

// --- waits across nodes ------------------------------------------------------------

void postgres_store::ended_runs(std::vector<std::string> runs, claimed_fn done) {
  if (!started_ || stopping_)
    return done(runtime::fail(error_kind::unavailable, "cluster: the store is not open", true));
  pg_array ids(pg_array::of::bytea);
  for (const std::string& id : runs) ids.bytes(id);
  next_reader().run({sql("SELECT " + run_columns() +
                             " FROM luad_runs WHERE id = ANY($1::bytea[])"
                             " AND state IN ('completed', 'failed', 'terminated')",
                         {ids.param()})},
                    [done = std::move(done)](pg_batch_result r) {
                      if (!r.ok()) return done(std::move(r.error()));
                      std::vector<run_record> out;
                      const pg_rows& rows = r->front();
                      for (int i = 0; i < rows.size(); ++i) {
                        auto rec = run_on_row(rows, i);
                        if (!rec) return done(std::move(rec.error()));
                        out.push_back(std::move(*rec));
                      }
                      done(std::move(out));
                    });
}

void postgres_store::on_ended(std::function<void()> wake) {
  asio::post(io_, [this, wake = std::move(wake)]() mutable { ended_wake_ = std::move(wake); });
}

}  // namespace luad::dispatcher
