// The PostgreSQL backend of the store (postgres_store.hpp): the schema, the
// two-round-trip batches, reads, expiry, and what it cannot do yet.
#include "dispatcher/postgres_store.hpp"

#include <libpq-fe.h>
#include <spdlog/spdlog.h>

#include <boost/asio/post.hpp>

#include <future>
#include <optional>
#include <set>
#include <stdexcept>
#include <utility>

#include "dispatcher/ledger.hpp"
#include "dispatcher/pg_conninfo.hpp"
#include "dispatcher/postgres_journal.hpp"
#include "dispatcher/store_ops.hpp"
#include "dispatcher/store_write.hpp"
#include "runtime/logging.hpp"
#include "runtime/message_codec.hpp"

namespace luad::dispatcher {

namespace asio = boost::asio;
using runtime::error;
using runtime::error_kind;

namespace {

constexpr std::size_t k_max_batch = 8192;
constexpr auto k_expiry_every = std::chrono::seconds(1);
constexpr int k_expiry_chunk = 1000;
// How often a writer whose server is away tries again (the session itself
// reconnects with growing pauses; this only bounds the asking).
constexpr auto k_reconnect_poll = std::chrono::milliseconds(100);

// Schema 1 (made under start()'s advisory lock; each statement may run again).
const char* const k_schema[] = {
    "CREATE TABLE IF NOT EXISTS luad_kv (ns bytea NOT NULL, key bytea NOT NULL,"
    " value bytea NOT NULL, expires float8, PRIMARY KEY (ns, key))",
    "CREATE INDEX IF NOT EXISTS luad_kv_expires ON luad_kv (expires) WHERE expires IS NOT NULL",
    "CREATE TABLE IF NOT EXISTS luad_ns_usage (ns bytea PRIMARY KEY, bytes int8 NOT NULL)",
};

error corrupt_value() {
  return runtime::fail(error_kind::internal, "store: a stored value is corrupt");
}

// A list (as on SQLite, store_ops.cpp): from the prefix, or just past the
// cursor; one row more than the limit says whether there are more.
std::int64_t list_limit(const runtime::value& a) {
  const runtime::value* lim = a.find("limit");
  const std::int64_t* l = lim ? lim->get<std::int64_t>() : nullptr;
  return l ? *l : 100;
}

pg_statement list_statement(const runtime::value& a, double now) {
  std::string prefix(text_field(a, "prefix"));
  std::string after(text_field(a, "after"));
  std::string from = prefix;
  if (!after.empty() && after >= prefix) from = after + '\0';
  return sql(
      "SELECT key, value FROM luad_kv WHERE ns = $1 AND key >= $2 AND ($3 = ''::bytea OR"
      " key < $3) AND (expires IS NULL OR expires > $4::float8) ORDER BY key LIMIT $5::int8",
      {pg_param::bytes(text_field(a, "ns")), pg_param::bytes(from),
       pg_param::bytes(prefix_end(prefix)), pg_param::real(now),
       pg_param::integer(list_limit(a) + 1)});
}

runtime::outcome list_outcome(const pg_rows& rows, std::int64_t limit) {
  runtime::value::array items;
  std::string cursor;
  int n = rows.size();
  bool more = n > limit;
  for (int i = 0; i < n && i < limit; ++i) {
    std::string k(rows.bytes(i, 0)), v(rows.bytes(i, 1));
    if (!runtime::valid_message(v)) return runtime::outcome::failure(corrupt_value());
    cursor = k;
    items.emplace_back(
        runtime::value::array{runtime::value(std::move(k)), runtime::value(std::move(v))});
  }
  runtime::value::map out;
  out.emplace_back("items", std::move(items));
  if (more) out.emplace_back("cursor", std::move(cursor));
  return runtime::outcome::success(std::move(out));
}

// Whether job `j` is an operation fused with its journal entry that lists:
// it runs first in its batch, so that round one's read is what it sees.
bool fused_list(const runtime::value& args, bool journaled) {
  return journaled && text_field(args, "op") == "list";
}

// The advisory lock of a namespace row `ns` (in SQL), and the statement that
// takes a batch's: its namespaces' and runs', in ascending order.
constexpr const char* k_namespace_lock = "hashtextextended('n' || encode(ns, 'hex'), 0)";

std::string lock_statement() {
  return "SELECT pg_advisory_xact_lock(h) FROM (SELECT DISTINCT h FROM ("
         "SELECT hashtextextended('n' || encode(ns, 'hex'), 0) AS h FROM unnest($1::bytea[]) ns"
         " UNION ALL"
         " SELECT hashtextextended('r' || encode(id, 'hex'), 0) FROM unnest($2::bytea[]) id"
         ") a ORDER BY h) s";
}

// A conflict another transaction won (or a deadlock): the batch may simply
// run again.
bool lost_conflict(const error& e) {
  return e.message.find("[SQLSTATE 40001]") != std::string::npos ||
         e.message.find("[SQLSTATE 40P01]") != std::string::npos;
}

}  // namespace

// A batch's rows as its first round trip read them, then as its writes leave
// them: the store_rows its writes run on.
struct postgres_store::batch_state final : store_rows {
  struct row {
    std::optional<std::string> value;  // nullopt: no row
    std::optional<double> expires;
    bool dirty = false;
  };
  using row_key = std::pair<std::string, std::string>;

  std::vector<job> jobs;
  std::map<row_key, row, std::less<>> rows;  // every key the batch touches
  std::map<std::string, std::int64_t, std::less<>> usage, usage_before;
  std::vector<runtime::outcome> results;
  pg_journal_batch journal;
  std::size_t journal_at = 0, list_at = 0,
              xact_at = 0;  // round one's statements: where each part's are
  std::int64_t xact = 0;  // the transaction's id, to ask after its fate if COMMIT's answer is lost
  std::chrono::steady_clock::time_point doubt_until{};  // and until when to ask
  std::optional<runtime::outcome> listed;               // a fused list's answer (it is first)
  int attempts = 0;
  std::uint64_t written = 0;
  std::chrono::steady_clock::time_point began;

  row& at(std::string_view ns, std::string_view key) {
    return rows[row_key(std::string(ns), std::string(key))];
  }
  bool find(std::string_view ns, std::string_view key, double now, stored_row& out) override {
    row& r = at(ns, key);
    out = {};
    if (r.value)
      out = {static_cast<std::int64_t>(key.size() + r.value->size()),
             !r.expires || *r.expires > now};
    return true;
  }
  bool live_value(std::string_view ns, std::string_view key, double now,
                  std::optional<std::string>& value) override {
    row& r = at(ns, key);
    value.reset();
    if (r.value && (!r.expires || *r.expires > now)) value = r.value;
    return true;
  }
  bool put(std::string_view ns, std::string_view key, std::string_view value,
           std::optional<double> expires) override {
    row& r = at(ns, key);
    r.value = std::string(value);
    r.expires = expires;
    r.dirty = true;
    return true;
  }
  bool erase(std::string_view ns, std::string_view key) override {
    row& r = at(ns, key);
    r.value.reset();
    r.expires.reset();
    r.dirty = true;
    return true;
  }
  error failure(const char* during) override {  // (the rows are in memory: never called)
    return runtime::fail(error_kind::internal, std::string("store: ") + during);
  }
};

std::string postgres_store::redacted(const std::string& conninfo) {
  return pg_conninfo_redacted(conninfo);
}

bool postgres_store::has_password(const std::string& conninfo) {
  return pg_conninfo_has_password(conninfo);
}

postgres_store::postgres_store(postgres_options o)
    : opts_(std::move(o)),
      where_(redacted(opts_.conninfo)),
      guard_(io_.get_executor()),
      expiry_(io_),
      pause_(io_),
      quotas_(std::make_shared<const store_quotas>()) {}

postgres_store::~postgres_store() { stop(); }

void postgres_store::start() {
  if (auto bad = pg_session::conninfo_error(opts_.conninfo))
    throw std::runtime_error("store: cannot use " + where_ + ": " + *bad);
  pg_session_options so{opts_.conninfo, opts_.password};
  so.statement_timeout = opts_.statement_timeout;
  writer_ = pg_session::make(io_, so);
  readers_.clear();
  for (std::size_t i = 1; i < std::max<std::size_t>(opts_.pool_size, 2); ++i)
    readers_.push_back(pg_session::make(io_, so));
  thread_ = std::thread([this] { io_.run(); });
  started_ = true;
  writer_->start();
  for (auto& r : readers_) r->start();
  // Blocking here is the daemon's start, not a worker's turn.
  auto run_on = [](pg_session& s, std::vector<pg_statement> b) {
    std::promise<pg_batch_result> p;
    auto f = p.get_future();
    s.run(std::move(b), [&p](pg_batch_result r) { p.set_value(std::move(r)); });
    return f.get();
  };
  auto run_now = [&](std::vector<pg_statement> b) { return run_on(*writer_, std::move(b)); };
  auto fail = [this](const std::string& why) {
    stop();
    throw std::runtime_error("store: cannot use " + where_ + ": " + why);
  };
  // Every connection up before anything reads (a slow machine connects the
  // readers after the writer; the cluster's join reads through them).
  auto deadline = std::chrono::steady_clock::now() + opts_.start_timeout;
  std::vector<pg_session*> sessions{writer_.get()};
  for (auto& r : readers_) sessions.push_back(r.get());
  for (pg_session* s : sessions) {
    pg_batch_result up = run_on(*s, {sql("SELECT 1")});
    while (!up.ok() && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));  // (the session retries)
      up = run_on(*s, {sql("SELECT 1")});
    }
    if (!up.ok()) fail(up.error().message);
  }
  // Under an advisory lock, held to the end of each batch's transaction, so
  // that daemons starting together on an empty database do not race.
  const auto migration_lock = sql("SELECT pg_advisory_xact_lock(7508617500363137024)");
  pg_batch_result found = run_now(
      {migration_lock,
       sql("CREATE TABLE IF NOT EXISTS luad_meta (key text PRIMARY KEY, value text NOT NULL)"),
       sql("SELECT value::int8 FROM luad_meta WHERE key = 'schema_version'")});
  if (!found.ok()) fail(found.error().message);
  std::int64_t have = (*found)[2].size() ? (*found)[2].integer(0, 0) : 0;
  if (have > schema_version)
    fail("the database was made by a newer luad (schema " + std::to_string(have) + ", this luad " +
         std::to_string(schema_version) + ")");
  if (have < schema_version) {
    std::vector<pg_statement> make{migration_lock};
    for (const char* s : k_schema) make.push_back(sql(s));
    for (const char* s : journal_schema()) make.push_back(sql(s));
    make.push_back(
        sql("INSERT INTO luad_meta VALUES ('schema_version', $1) ON CONFLICT (key)"
            " DO UPDATE SET value = EXCLUDED.value",
            {pg_param::text(std::to_string(schema_version))}));
    pg_batch_result made = run_now(std::move(make));
    if (!made.ok()) fail(made.error().message);
  }
  pg_batch_result totals = run_now({sql("SELECT ns, bytes FROM luad_ns_usage")});
  if (!totals.ok()) fail(totals.error().message);
  {
    std::lock_guard lock(usage_mu_);
    usage_.clear();
    const pg_rows& r = totals->front();
    for (int i = 0; i < r.size(); ++i) usage_[std::string(r.bytes(i, 0))] = r.integer(i, 1);
  }
  asio::post(io_, [this] { schedule_expiry(); });
}

void postgres_store::stop() {
  if (!started_.exchange(false)) return;
  stopping_ = true;
  asio::post(io_, [this] {
    expiry_.cancel();
    pause_.cancel();
    // What is queued and not yet sent fails; a batch in flight is failed by
    // close() as canceled (it may have committed: the script is told to retry).
    std::deque<job> left;
    left.swap(queue_);
    for (job& j : left)
      finish(j, runtime::outcome::failure(
                    runtime::fail(error_kind::canceled, "the store is shutting down", true)));
    writer_->close();
    for (auto& r : readers_) r->close();
    if (listener_) listener_->close();
  });
  guard_.reset();
  thread_.join();
}

void postgres_store::submit(command&& cmd, completion&& done) {
  job j{std::move(cmd), std::move(done), nullptr};
  if (stopping_ || !started_) {
    j.done.fail(runtime::fail(error_kind::canceled, "the store is shutting down", true));
    return;
  }
  if (is_read(text_field(j.cmd.args, "op"))) {
    read(std::move(j));
    return;
  }
  asio::post(io_, [this, j = std::move(j)]() mutable {
    queue_.push_back(std::move(j));
    if (!batch_) write_next();
  });
}

// --- reads ----------------------------------------------------------------------

pg_session& postgres_store::next_reader() {
  return *readers_[next_reader_.fetch_add(1, std::memory_order_relaxed) % readers_.size()];
}

void postgres_store::read(job j) {
  const runtime::value& a = j.cmd.args;
  std::string_view op = text_field(a, "op");
  double now = now_seconds();
  if (op == "get") {
    std::string ns(text_field(a, "ns"));
    auto done = std::make_shared<completion>(std::move(j.done));
    next_reader().run(
        {sql("SELECT value FROM luad_kv WHERE ns = $1 AND key = $2"
             " AND (expires IS NULL OR expires > $3::float8)",
             {pg_param::bytes(ns), pg_param::bytes(text_field(a, "key")), pg_param::real(now)})},
        [done](pg_batch_result r) {
          if (!r.ok()) return done->fail(std::move(r.error()));
          const pg_rows& rows = r->front();
          if (rows.size() == 0) return done->succeed({});
          std::string v(rows.bytes(0, 0));
          if (!runtime::valid_message(v)) return done->fail(corrupt_value());
          done->succeed(std::move(v));
        });
    return;
  }
  auto done = std::make_shared<completion>(std::move(j.done));
  next_reader().run({list_statement(a, now)}, [done, limit = list_limit(a)](pg_batch_result r) {
    if (!r.ok()) return done->fail(std::move(r.error()));
    runtime::outcome o = list_outcome(r->front(), limit);
    if (o.err) return done->fail(std::move(*o.err));
    done->succeed(std::move(o.val));
  });
}

// --- writes (io thread) ------------------------------------------------------------

void postgres_store::write_next() {
  if (batch_ || queue_.empty()) return;
  batch_ = std::make_unique<batch_state>();
  while (!queue_.empty() && batch_->jobs.size() < k_max_batch) {
    job& j = queue_.front();
    // A fused list reads what the batch before it left: it starts a batch.
    if (fused_list(j.cmd.args, j.journal != nullptr) && !batch_->jobs.empty()) break;
    if (j.journal || !j.done.abandoned()) batch_->jobs.push_back(std::move(j));
    queue_.pop_front();
  }
  if (batch_->jobs.empty()) {
    batch_.reset();
    return;
  }
  batch_->began = std::chrono::steady_clock::now();
  if (fault_ == store_fault::disk_full) {
    error e = runtime::fail(error_kind::unavailable,
                            "store: " + where_ + ": could not extend the database (disk full)");
    end_batch(&e);
    return;
  }
  read_rows();
}

// Round trip one: begin, and read what the batch touches.
void postgres_store::read_rows() {
  batch_state& b = *batch_;
  b.rows.clear();
  b.usage.clear();
  b.journal = pg_journal_batch({cluster_.node, &owned_});
  b.listed.reset();
  std::set<batch_state::row_key> keys;
  std::set<std::string> nss;
  for (const job& j : b.jobs) {
    if (j.journal) b.journal.want(*j.journal);
    if (j.journal && !j.journal->applied) continue;  // no store operation
    std::string ns(text_field(j.cmd.args, "ns"));
    keys.emplace(ns, std::string(text_field(j.cmd.args, "key")));
    nss.insert(std::move(ns));
  }
  // One statement each for all the keys and all the namespaces, whatever
  // the batch's size: the keys travel as arrays.
  pg_array key_ns(pg_array::of::bytea), key_key(pg_array::of::bytea), ns_list(pg_array::of::bytea);
  for (const auto& k : keys) {
    key_ns.bytes(k.first);
    key_key.bytes(k.second);
    b.rows[k];  // a key with no row stays absent
  }
  for (const auto& ns : nss) {
    ns_list.bytes(ns);
    b.usage[ns] = 0;
  }
  pg_array run_ids(pg_array::of::bytea);
  for (const std::string& id : b.journal.runs_wanted()) run_ids.bytes(id);
  std::vector<pg_statement> round{
      sql("BEGIN"),
      // The namespaces and runs the batch writes, locked for its
      // transaction in one order on every daemon (no deadlock): a daemon's
      // batch waits for another's on the same namespace or run, then reads
      // what that one committed (READ COMMITTED reads anew each statement).
      sql(lock_statement(), {ns_list.param(), run_ids.param()}),
      // LATERAL: one index probe per key, never a scan of the whole table.
      sql("SELECT k.ns, k.key, kv.value, kv.expires"
          " FROM unnest($1::bytea[], $2::bytea[]) AS k(ns, key), LATERAL"
          " (SELECT value, expires FROM luad_kv WHERE ns = k.ns AND key = k.key) kv",
          {key_ns.param(), key_key.param()}),
      sql("SELECT ns, bytes FROM luad_ns_usage WHERE ns = ANY($1::bytea[])", {ns_list.param()})};
  b.journal_at = round.size();
  if (!b.journal.empty()) b.journal.reads(round);
  b.list_at = round.size();
  const job& first = b.jobs.front();
  if (fused_list(first.cmd.args, first.journal != nullptr))
    round.push_back(list_statement(first.cmd.args, now_seconds()));
  b.xact_at = round.size();
  round.push_back(sql("SELECT pg_current_xact_id()::text::int8"));
  writer_->run(std::move(round), [this](pg_batch_result r) { apply_and_commit(std::move(r)); });
}

// Between the round trips: the writes applied in order to the rows read;
// round trip two: what changed, and COMMIT.
void postgres_store::apply_and_commit(pg_batch_result r) {
  if (!r.ok()) return roll_back(std::move(r.error()));
  batch_state& b = *batch_;
  const pg_rows& found = (*r)[2];
  for (int i = 0; i < found.size(); ++i) {
    batch_state::row& row = b.rows[batch_state::row_key(found.bytes(i, 0), found.bytes(i, 1))];
    row.value = std::string(found.bytes(i, 2));
    if (!found.is_null(i, 3)) row.expires = found.real(i, 3);
  }
  const pg_rows& totals = (*r)[3];
  for (int i = 0; i < totals.size(); ++i)
    b.usage[std::string(totals.bytes(i, 0))] = totals.integer(i, 1);
  b.usage_before = b.usage;
  b.xact = (*r)[b.xact_at].integer(0, 0);
  if (!b.journal.empty())
    b.journal.take((*r)[b.journal_at], (*r)[b.journal_at + 1], (*r)[b.journal_at + 2]);
  if (b.list_at < r->size())
    b.listed = list_outcome((*r)[b.list_at], list_limit(b.jobs[0].cmd.args));
  std::shared_ptr<const store_quotas> q;
  {
    std::lock_guard lock(usage_mu_);
    q = quotas_;
  }
  ledger book(b.usage, *q);
  double now = now_seconds();
  b.results.clear();
  for (job& j : b.jobs) {
    b.results.push_back(j.journal ? apply_journal(b, book, j, now)
                                  : apply_store_write(b, book, j.cmd.args, now));
  }
  b.written = book.written();
  pg_array put_ns(pg_array::of::bytea), put_key(pg_array::of::bytea),
      put_value(pg_array::of::bytea), put_expires(pg_array::of::float8);
  pg_array gone_ns(pg_array::of::bytea), gone_key(pg_array::of::bytea);
  for (auto& [k, row] : b.rows) {
    if (!row.dirty) continue;
    if (row.value) {
      put_ns.bytes(k.first);
      put_key.bytes(k.second);
      put_value.bytes(*row.value);
      if (row.expires)
        put_expires.real(*row.expires);
      else
        put_expires.null();
    } else {
      gone_ns.bytes(k.first);
      gone_key.bytes(k.second);
    }
  }
  pg_array usage_ns(pg_array::of::bytea), usage_delta(pg_array::of::int8);
  for (const auto& [ns, bytes] : b.usage) {
    std::int64_t delta = bytes - b.usage_before[ns];
    if (delta == 0) continue;
    usage_ns.bytes(ns);
    usage_delta.integer(delta);
  }
  std::vector<pg_statement> round;
  if (put_ns.size())
    round.push_back(
        sql("INSERT INTO luad_kv SELECT * FROM unnest($1::bytea[], $2::bytea[],"
            " $3::bytea[], $4::float8[]) ON CONFLICT (ns, key) DO UPDATE"
            " SET value = EXCLUDED.value, expires = EXCLUDED.expires",
            {put_ns.param(), put_key.param(), put_value.param(), put_expires.param()}));
  if (gone_ns.size())
    round.push_back(
        sql("DELETE FROM luad_kv USING unnest($1::bytea[], $2::bytea[]) AS d(ns, key)"
            " WHERE luad_kv.ns = d.ns AND luad_kv.key = d.key",
            {gone_ns.param(), gone_key.param()}));
  if (usage_ns.size())
    round.push_back(
        sql("INSERT INTO luad_ns_usage SELECT * FROM unnest($1::bytea[], $2::int8[])"
            " ON CONFLICT (ns) DO UPDATE SET bytes = luad_ns_usage.bytes + EXCLUDED.bytes",
            {usage_ns.param(), usage_delta.param()}));
  b.journal.writes(round);
  round.push_back(sql("COMMIT"));
  writer_->run(std::move(round), [this](pg_batch_result c) {
    if (c.ok() && fault_ == store_fault::commit_answer_lost) {
      fault_ = store_fault::none;
      c = runtime::fail(error_kind::unavailable,
                        "postgres: the answer to COMMIT was lost (injected) [SQLSTATE 08006]",
                        true);
    }
    if (!c.ok() && pg_connection_lost(c.error()) && !stopping_) return settle(std::move(c.error()));
    if (!c.ok()) return roll_back(std::move(c.error()));
    end_batch(nullptr);
  });
}

// The connection went after the batch's COMMIT was sent: it may have landed.
// Rather than fail writes that may be done (a script's retry would then
// apply an increment twice), the server is asked, once it is back, what
// became of the transaction (pg_xact_status): committed, the batch is
// answered as done; aborted, it failed as a lost connection fails (store
// writes retryable, journal writes held); still in progress (the old
// session's COMMIT not yet run out), asked again. A server that stays away
// past journal_retry leaves the outcome unknown, and the writes are failed
// saying so.
void postgres_store::settle(error lost) {
  batch_state& b = *batch_;
  if (b.doubt_until == std::chrono::steady_clock::time_point{})
    b.doubt_until = std::chrono::steady_clock::now() + journal_retry;
  writer_->run(
      {sql("SELECT pg_xact_status($1::text::xid8)", {pg_param::integer(b.xact)})},
      [this, lost = std::move(lost)](pg_batch_result r) mutable {
        if (r.ok() && r->front().size() == 1 && !r->front().is_null(0, 0)) {
          std::string_view fate = r->front().bytes(0, 0);
          if (fate == "committed") return end_batch(nullptr);
          if (fate == "aborted") return end_batch(&lost);
        }
        if (!stopping_ && std::chrono::steady_clock::now() < batch_->doubt_until) {
          pause_.expires_after(k_reconnect_poll);
          pause_.async_wait([this, lost = std::move(lost)](boost::system::error_code) mutable {
            settle(std::move(lost));
          });
          return;
        }
        error unknown = runtime::fail(
            error_kind::unavailable,
            "store: " + where_ +
                ": the connection was lost after COMMIT was sent and the server could not say"
                " whether it landed: these writes may have been applied",
            false);
        end_batch(&unknown);
      });
}

// The transaction failed: end it, then run the batch again if it lost a
// conflict (its reads are stale), or fail it.
void postgres_store::roll_back(error e) {
  writer_->run({sql("ROLLBACK")}, [this, e = std::move(e)](pg_batch_result) mutable {
    batch_state& b = *batch_;
    if (lost_conflict(e) && ++b.attempts < max_attempts && !stopping_) return read_rows();
    if (e.kind != error_kind::unavailable && e.kind != error_kind::timeout) {
      e = runtime::fail(error_kind::unavailable, e.message, lost_conflict(e));
    }
    end_batch(&e);
  });
}

void postgres_store::end_batch(const error* e) {
  std::unique_ptr<batch_state> b = std::move(batch_);
  bool held = false;  // journal writes wait for the server: the next batch after a pause
  if (e && pg_connection_lost(*e) && !stopping_) {
    // Journal writes wait for the server (in order, at the queue's front);
    // store operations fail, retryable, for their scripts to decide.
    auto now = std::chrono::steady_clock::now();
    std::vector<job> kept, rest;
    for (job& j : b->jobs) {
      if (j.journal) {
        if (j.retry_until == std::chrono::steady_clock::time_point{})
          j.retry_until = now + journal_retry;
        if (now < j.retry_until) {
          j.retried = true;
          kept.push_back(std::move(j));
          continue;
        }
      }
      rest.push_back(std::move(j));
    }
    b->jobs = std::move(rest);
    held = !kept.empty();
    for (auto it = kept.rbegin(); it != kept.rend(); ++it) queue_.push_front(std::move(*it));
    if (held && b->attempts == 0)
      runtime::logger().warn("{}; {} journal writes wait for the database", e->message,
                             kept.size());
  }
  if (e) {
    runtime::logger().warn("{} ({} writes failed)", e->message, b->jobs.size());
    {
      std::lock_guard lock(stats_mu_);
      ++counters_.failed_batches;
    }
    for (job& j : b->jobs) finish(j, runtime::outcome::failure(*e));
  } else {
    commit_durations_.observe(std::chrono::steady_clock::now() - b->began);
    {
      std::lock_guard lock(usage_mu_);
      for (const auto& [ns, bytes] : b->usage) usage_[ns] = bytes;
    }
    {
      std::lock_guard lock(stats_mu_);
      ++counters_.commits;
      counters_.writes += b->jobs.size();
      counters_.written_bytes += b->written;
    }
    for (std::size_t i = 0; i < b->jobs.size(); ++i) finish(b->jobs[i], std::move(b->results[i]));
  }
  if (!held) return write_next();
  // (Not at once: while the server is away every attempt fails at once.)
  pause_.expires_after(k_reconnect_poll);
  pause_.async_wait([this](boost::system::error_code) { write_next(); });
}

// --- expiry ---------------------------------------------------------------------------

void postgres_store::schedule_expiry() {
  if (stopping_) return;
  expiry_.expires_after(k_expiry_every);
  expiry_.async_wait([this](boost::system::error_code ec) {
    if (!ec) expire_some();
  });
}

// Deletes some expired rows, and gives their bytes back to their namespaces,
// in one statement; rows another daemon is deleting are skipped.
void postgres_store::expire_some() {
  if (batch_ || stopping_) return schedule_expiry();  // writes first
  writer_->run(
      {sql("WITH gone AS (DELETE FROM luad_kv WHERE (ns, key) IN (SELECT ns, key FROM luad_kv"
           " WHERE expires <= $1::float8 AND pg_try_advisory_xact_lock(" +
               std::string(k_namespace_lock) +
               ") LIMIT $2::int8 FOR UPDATE SKIP LOCKED)"
               " RETURNING ns, length(key) + length(value) AS b),"
               " per AS (SELECT ns, sum(b)::int8 AS b FROM gone GROUP BY ns)"
               " UPDATE luad_ns_usage u SET bytes = u.bytes - per.b FROM per WHERE u.ns = per.ns"
               " RETURNING u.ns, u.bytes",
           {pg_param::real(now_seconds()), pg_param::integer(k_expiry_chunk)})},
      [this](pg_batch_result r) {
        if (r.ok()) {
          std::lock_guard lock(usage_mu_);
          const pg_rows& rows = r->front();
          for (int i = 0; i < rows.size(); ++i)
            usage_[std::string(rows.bytes(i, 0))] = rows.integer(i, 1);
        }
        schedule_expiry();
        write_next();  // writes that came meanwhile
      });
}

// --- quotas, counters, faults --------------------------------------------------------

void postgres_store::set_quotas(store_quotas q) {
  auto fresh = std::make_shared<const store_quotas>(std::move(q));
  std::lock_guard lock(usage_mu_);
  quotas_ = std::move(fresh);
}

std::uint64_t postgres_store::namespace_bytes(std::string_view ns) const {
  std::lock_guard lock(usage_mu_);
  auto u = usage_.find(ns);
  return u != usage_.end() && u->second > 0 ? static_cast<std::uint64_t>(u->second) : 0;
}

store_counters postgres_store::snapshot() const {
  std::int64_t held = 0;
  {
    std::lock_guard lock(usage_mu_);
    for (const auto& [ns, bytes] : usage_) held += bytes;
  }
  std::lock_guard lock(stats_mu_);
  store_counters c = counters_;
  c.held_bytes = held > 0 ? static_cast<std::uint64_t>(held) : 0;
  return c;
}

void postgres_store::inject(store_fault f) {
  asio::post(io_, [this, f] {
    fault_ = f;
    const char* on = f == store_fault::read_only ? "on" : "off";
    writer_->run({sql(std::string("SET default_transaction_read_only = ") + on)},
                 [](pg_batch_result) {});
  });
}

// --- the journal (journal_backend) -----------------------------------------------------

void postgres_store::finish(job& j, runtime::outcome o) {
  if (j.journal)
    j.journal->finish(std::move(o));
  else if (o.err)
    j.done.fail(std::move(*o.err));
  else
    j.done.succeed(std::move(o.val));
}

// One journal write of a batch, on the rows round one read.
runtime::outcome postgres_store::apply_journal(batch_state& b, ledger& book, job& j, double now) {
  auto as_outcome = [](runtime::status s) {
    return s ? runtime::outcome::success({}) : runtime::outcome::failure(std::move(s.error()));
  };
  journal_write& w = *j.journal;
  // A write tried again after its commit's answer was lost may find itself
  // landed: this node owns the run (else it is fenced first), so what is
  // there is its own.
  auto landed = [&j](runtime::status s) {
    if (!s && j.retried && s.error().kind == error_kind::invalid &&
        (s.error().message.find("already exists") != std::string::npos ||
         s.error().message.find("already done") != std::string::npos ||
         s.error().message.find("already recorded") != std::string::npos))
      return runtime::status(runtime::done{});
    return s;
  };
  if (auto* r = std::get_if<run_record>(&w.what))
    return as_outcome(landed(b.journal.create_run(*r, now)));
  if (auto* c = std::get_if<journal_write::state_change>(&w.what))
    return as_outcome(b.journal.set_state(*c, now));
  if (auto* m = std::get_if<inbox_message>(&w.what))
    return as_outcome(landed(b.journal.put_message(*m, now)));
  auto& e = std::get<journal_entry>(w.what);
  if (!w.applied) return as_outcome(landed(b.journal.append(e, now)));
  // Fused: a refused entry leaves the store untouched; the operation's own
  // failure (limit, invalid) is its journaled result.
  if (runtime::status ok = b.journal.claim(e); !ok) {
    if (j.retried && landed(ok))  // its own earlier commit: answer what it recorded
      if (auto before = b.journal.done_before(e)) return std::move(*before);
    return as_outcome(std::move(ok));
  }
  const runtime::value& args = j.cmd.args;
  std::string_view op = text_field(args, "op");
  runtime::outcome o;
  if (op == "list") {
    o = b.listed ? std::move(*b.listed)
                 : runtime::outcome::failure(runtime::fail(error_kind::internal, "store: list"));
  } else if (op == "get") {
    std::optional<std::string> v;
    b.live_value(text_field(args, "ns"), text_field(args, "key"), now, v);
    o = !v                           ? runtime::outcome::success({})
        : runtime::valid_message(*v) ? runtime::outcome::success(std::move(*v))
                                     : runtime::outcome::failure(corrupt_value());
  } else {
    o = apply_store_write(b, book, args, now);
  }
  record_outcome(e, o);
  b.journal.put(e, now);
  return o;
}

void postgres_store::queue_journal(std::unique_ptr<journal_write> w, runtime::value store_args) {
  job j{{command_id::store_op, std::move(store_args)}, {}, std::move(w)};
  if (stopping_ || !started_) {
    finish(j, runtime::outcome::failure(
                  runtime::fail(error_kind::canceled, "the store is shutting down", true)));
    return;
  }
  asio::post(io_, [this, j = std::move(j)]() mutable {
    queue_.push_back(std::move(j));
    if (!batch_) write_next();
  });
}

void postgres_store::create_run(run_record run, written_fn done) {
  queue_journal(std::make_unique<journal_write>(journal_write{std::move(run), std::move(done), {}}),
                {});
}

void postgres_store::set_state(std::string run, run_state state, std::string detail,
                               written_fn done) {
  journal_write::state_change c{std::move(run), state, std::move(detail)};
  queue_journal(std::make_unique<journal_write>(journal_write{std::move(c), std::move(done), {}}),
                {});
}

void postgres_store::append(journal_entry entry, written_fn done) {
  queue_journal(
      std::make_unique<journal_write>(journal_write{std::move(entry), std::move(done), {}}), {});
}

void postgres_store::apply_and_append(journal_entry entry, runtime::value store_args,
                                      applied_fn done) {
  queue_journal(
      std::make_unique<journal_write>(journal_write{std::move(entry), {}, std::move(done)}),
      std::move(store_args));
}

void postgres_store::append_message(inbox_message m, written_fn done) {
  queue_journal(std::make_unique<journal_write>(journal_write{std::move(m), std::move(done), {}}),
                {});
}

pg_batch_result postgres_store::run_blocking(std::vector<pg_statement> batch) {
  if (!started_ || stopping_)
    return runtime::fail(error_kind::unavailable, "journal: the store is not open");
  std::promise<pg_batch_result> p;
  auto f = p.get_future();
  next_reader().run(std::move(batch), [&p](pg_batch_result r) { p.set_value(std::move(r)); });
  return f.get();
}

runtime::result<std::vector<run_record>> postgres_store::runs(bool unfinished_only) {
  return pg_read_runs([this](auto b) { return run_blocking(std::move(b)); }, unfinished_only);
}
runtime::result<run_record> postgres_store::run(std::string_view id) {
  return pg_read_run([this](auto b) { return run_blocking(std::move(b)); }, id);
}
runtime::result<std::vector<journal_entry>> postgres_store::history(std::string_view run) {
  return pg_read_history([this](auto b) { return run_blocking(std::move(b)); }, run);
}
runtime::result<std::vector<inbox_message>> postgres_store::messages(std::string_view run) {
  return pg_read_messages([this](auto b) { return run_blocking(std::move(b)); }, run);
}

}  // namespace luad::dispatcher
