// The journal of durable runs on PostgreSQL (postgres_journal.hpp): the
// tables, one batch's reads, rules and writes, and the blocking reads.
#include "dispatcher/postgres_journal.hpp"

#include <algorithm>

#include "dispatcher/cluster_backend.hpp"

#include "runtime/message_codec.hpp"

namespace luad::dispatcher {

using runtime::error_kind;

namespace {

std::string select_runs() { return "SELECT " + run_columns() + " FROM luad_runs"; }

}  // namespace

std::string run_columns(std::string_view alias) {
  std::string out;
  for (const char* c : {"id", "workflow", "owner", "script", "code_hash", "args", "state", "detail",
                        "steps", "created", "updated", "spawn", "node", "epoch"}) {
    if (!out.empty()) out += ", ";
    out += std::string(alias) + c;
  }
  return out;
}

runtime::result<run_record> run_on_row(const pg_rows& rows, int i) {
  run_record r;
  r.id = rows.bytes(i, 0);
  r.workflow = rows.bytes(i, 1);
  r.owner = rows.bytes(i, 2);
  r.script = rows.bytes(i, 3);
  r.code_hash = rows.bytes(i, 4);
  r.args = rows.bytes(i, 5);
  std::string_view state = rows.bytes(i, 6);
  auto parsed = parse_run_state(state);
  if (!parsed) {
    return runtime::fail(error_kind::invalid,
                         "journal: run '" + r.id + "': unknown state '" + std::string(state) + "'");
  }
  r.state = *parsed;
  r.detail = rows.bytes(i, 7);
  r.steps = rows.integer(i, 8);
  r.created = rows.real(i, 9);
  r.updated = rows.real(i, 10);
  r.spawn = rows.bytes(i, 11);
  r.node = static_cast<std::uint32_t>(rows.integer(i, 12));  // (NULL reads 0)
  r.epoch = rows.integer(i, 13);
  return r;
}

const std::vector<const char*>& journal_schema() {
  static const std::vector<const char*> schema = {
      // `seq` orders runs created in the same instant; `node` and `epoch`
      // are its owner's claim (cluster_backend.hpp; NULL: no owner).
      "CREATE TABLE IF NOT EXISTS luad_runs (id bytea PRIMARY KEY, seq bigserial,"
      " workflow bytea NOT NULL, owner bytea NOT NULL, script bytea NOT NULL,"
      " code_hash bytea NOT NULL, args bytea NOT NULL, state text NOT NULL,"
      " detail bytea NOT NULL, steps int8 NOT NULL, created float8 NOT NULL,"
      " updated float8 NOT NULL, spawn bytea NOT NULL, node int4, epoch int8 NOT NULL)",
      "CREATE INDEX IF NOT EXISTS luad_runs_node ON luad_runs (node)"
      " WHERE state NOT IN ('completed', 'failed', 'terminated')",
      // One row per node of the cluster: its lease, renewed by its daemon
      // (times in the database's clock, unix seconds).
      "CREATE TABLE IF NOT EXISTS luad_nodes (node int4 PRIMARY KEY, instance text NOT NULL,"
      " host text NOT NULL, version text NOT NULL, started float8 NOT NULL,"
      " heartbeat float8 NOT NULL, lease_until float8 NOT NULL, load int8 NOT NULL,"
      " capacity int8 NOT NULL, left_at float8, pid int8 NOT NULL)",
      "CREATE INDEX IF NOT EXISTS luad_runs_unfinished ON luad_runs (created, seq)"
      " WHERE state NOT IN ('completed', 'failed', 'terminated')",
      "CREATE TABLE IF NOT EXISTS luad_journal (run bytea NOT NULL, step int8 NOT NULL,"
      " command int4 NOT NULL, args bytea NOT NULL, state int2 NOT NULL, failed int2 NOT NULL,"
      " result bytea NOT NULL, at float8 NOT NULL, PRIMARY KEY (run, step))",
      "CREATE TABLE IF NOT EXISTS luad_inbox (run bytea NOT NULL, seq int8 NOT NULL,"
      " sender bytea NOT NULL, topic bytea NOT NULL, payload bytea NOT NULL,"
      " at float8 NOT NULL, PRIMARY KEY (run, seq))",
      // Schema 3. The names durable runs' processes registered, for sends
      // from any node (the node that registered it, and who may send to it);
      // and mail: messages sent from another node, waiting for the run's
      // node to move them into its inbox (postgres_mail.cpp).
      "CREATE TABLE IF NOT EXISTS luad_names (name bytea PRIMARY KEY, run bytea NOT NULL,"
      " node int4 NOT NULL, owner bytea NOT NULL, reachable bytea NOT NULL,"
      " controlled bytea NOT NULL, max_bytes int8 NOT NULL)",  // (owner lists: NUL-separated)
      "CREATE TABLE IF NOT EXISTS luad_mail (id bigserial PRIMARY KEY, run bytea NOT NULL,"
      " sender bytea NOT NULL, topic bytea NOT NULL, payload bytea NOT NULL,"
      " at float8 NOT NULL)",
      "CREATE INDEX IF NOT EXISTS luad_mail_run ON luad_mail (run, id)",
  };
  return schema;
}

// --- one batch ---------------------------------------------------------------------

void pg_journal_batch::want(const journal_write& w) {
  want_runs_.insert(w.run());
  if (const auto* e = std::get_if<journal_entry>(&w.what)) want_steps_.emplace(e->run, e->step);
  if (const auto* m = std::get_if<inbox_message>(&w.what)) want_seqs_.emplace(m->run, m->seq);
}

void pg_journal_batch::reads(std::vector<pg_statement>& out) const {
  pg_array ids(pg_array::of::bytea);
  for (const auto& id : want_runs_) ids.bytes(id);
  pg_array step_run(pg_array::of::bytea), step_no(pg_array::of::int8);
  for (const auto& [run, step] : want_steps_) {
    step_run.bytes(run);
    step_no.integer(step);
  }
  pg_array seq_run(pg_array::of::bytea), seq_no(pg_array::of::int8);
  for (const auto& [run, seq] : want_seqs_) {
    seq_run.bytes(run);
    seq_no.integer(seq);
  }
  out.push_back(
      // FOR UPDATE: a claim by another node waits for this batch, or this
      // batch for the claim (and then reads its new owner: fenced).
      sql("SELECT id, state, detail, steps, updated, node, epoch FROM luad_runs"
          " WHERE id = ANY($1::bytea[]) FOR UPDATE",
          {ids.param()}));
  out.push_back(
      sql("SELECT k.run, k.step, j.state, j.failed, j.result FROM unnest($1::bytea[], $2::int8[])"
          " AS k(run, step), LATERAL (SELECT state, failed, result FROM luad_journal"
          " WHERE run = k.run AND step = k.step) j",
          {step_run.param(), step_no.param()}));
  out.push_back(
      sql("SELECT k.run, k.seq FROM unnest($1::bytea[], $2::int8[]) AS k(run, seq)"
          " WHERE EXISTS (SELECT 1 FROM luad_inbox i WHERE i.run = k.run"
          " AND i.seq = k.seq)",
          {seq_run.param(), seq_no.param()}));
}

void pg_journal_batch::take(const pg_rows& runs, const pg_rows& steps, const pg_rows& seqs) {
  runs_.clear();
  created_.clear();
  queued_any_ = false;
  step_states_.clear();
  read_done_.clear();
  entries_.clear();
  seqs_.clear();
  messages_.clear();
  for (int i = 0; i < runs.size(); ++i) {
    run_row& r = runs_[std::string(runs.bytes(i, 0))];
    r.exists = true;
    r.rec.id = runs.bytes(i, 0);
    r.state = runs.bytes(i, 1);  // (as it is: an unknown one is kept, not guessed)
    r.rec.detail = runs.bytes(i, 2);
    r.rec.steps = runs.integer(i, 3);
    r.rec.updated = runs.real(i, 4);
    r.rec.node = static_cast<std::uint32_t>(runs.integer(i, 5));
    r.rec.epoch = runs.integer(i, 6);
  }
  for (int i = 0; i < steps.size(); ++i) {
    step_key k(steps.bytes(i, 0), steps.integer(i, 1));
    step_states_[k] = steps.integer(i, 2);
    if (steps.integer(i, 2) == static_cast<std::int64_t>(step_state::done)) {
      journal_entry& e = read_done_[k];
      e.failed = steps.integer(i, 3) != 0;
      e.result = steps.bytes(i, 4);
    }
  }
  for (int i = 0; i < seqs.size(); ++i) seqs_.emplace(seqs.bytes(i, 0), seqs.integer(i, 1));
}

runtime::status pg_journal_batch::create_run(const run_record& r, double now) {
  if (runtime::status ok = check_new_run(r); !ok) return ok;
  run_row& row = runs_[r.id];
  if (row.exists)
    return runtime::fail(error_kind::invalid, "journal: run '" + r.id + "' already exists");
  row.exists = row.created = true;
  created_.push_back(r.id);
  row.rec = r;
  row.state = run_state_name(r.state);
  row.rec.steps = 0;
  row.rec.node = 0;
  row.rec.epoch = 0;
  if (r.queued && owner_.node) {
    queued_any_ = true;
  } else if (owner_.node) {  // taken here: this node's first claim
    row.rec.node = owner_.node;
    row.rec.epoch = 1;
    (*owner_.epochs)[r.id] = 1;
  }
  if (row.rec.created <= 0) row.rec.created = now;
  if (row.rec.updated <= 0) row.rec.updated = now;
  if (row.rec.spawn.empty()) row.rec.spawn = "{}";
  return runtime::done{};
}

runtime::status pg_journal_batch::fence(const std::string& run, const run_row& row) const {
  if (!owner_.node) return runtime::done{};
  auto mine = owner_.epochs->find(run);
  if (row.rec.node == owner_.node && mine != owner_.epochs->end() && mine->second == row.rec.epoch)
    return runtime::done{};
  std::string who = row.rec.node ? "node " + std::to_string(row.rec.node) : "no node";
  return runtime::fail(error_kind::canceled, "journal: run '" + run + "' is owned by " + who +
                                                 " now " + std::string(fenced_marker));
}

runtime::status pg_journal_batch::set_state(const journal_write::state_change& c, double now) {
  auto it = runs_.find(c.run);
  if (it == runs_.end() || !it->second.exists) return journal_no_run(c.run);
  if (runtime::status ok = fence(c.run, it->second); !ok) return ok;
  run_record& rec = it->second.rec;
  it->second.state = run_state_name(c.state);
  rec.detail = c.detail;
  rec.updated = now;
  it->second.dirty = true;
  return runtime::done{};
}

runtime::status pg_journal_batch::claim(const journal_entry& e) {
  if (std::string why = journal_entry_fault(e, false); !why.empty())
    return journal_at_step(e.run, e.step, why);
  auto it = runs_.find(e.run);
  if (it == runs_.end() || !it->second.exists) return journal_no_run(e.run);
  if (runtime::status ok = fence(e.run, it->second); !ok) return ok;
  std::int64_t& steps = it->second.rec.steps;
  auto earlier = step_states_.find(step_key(e.run, e.step));
  runtime::status ok = step_rule(e, steps, earlier == step_states_.end() ? 0 : earlier->second);
  if (ok && e.step == steps) ++steps;
  return ok;
}

std::optional<runtime::outcome> pg_journal_batch::done_before(const journal_entry& e) const {
  auto it = read_done_.find(step_key(e.run, e.step));
  if (it == read_done_.end()) return std::nullopt;
  return read_outcome(it->second);
}

void pg_journal_batch::put(const journal_entry& e, double now) {
  step_key k(e.run, e.step);
  journal_entry& stored = entries_[k] = e;
  if (stored.at <= 0) stored.at = now;
  step_states_[k] = static_cast<std::int64_t>(e.state);
  run_row& row = runs_[e.run];
  row.rec.updated = std::max(row.rec.updated, stored.at);
  row.dirty = true;
}

runtime::status pg_journal_batch::append(const journal_entry& e, double now) {
  if (std::string why = journal_entry_fault(e, true); !why.empty())
    return journal_at_step(e.run, e.step, why);
  runtime::status ok = claim(e);
  if (ok) put(e, now);
  return ok;
}

runtime::status pg_journal_batch::put_message(const inbox_message& m, double now) {
  if (runtime::status ok = check_message(m); !ok) return ok;
  auto it = runs_.find(m.run);
  step_key k(m.run, m.seq);
  if (it == runs_.end() || !it->second.exists || seqs_.count(k)) return message_taken(m);
  if (runtime::status ok = fence(m.run, it->second); !ok) return ok;
  seqs_.insert(k);
  messages_.push_back(m);
  if (messages_.back().at <= 0) messages_.back().at = now;
  return runtime::done{};
}

void pg_journal_batch::writes(std::vector<pg_statement>& out) const {
  using of = pg_array::of;
  pg_array id(of::bytea), workflow(of::bytea), run_owner(of::bytea), script(of::bytea),
      hash(of::bytea), args(of::bytea), state(of::text), detail(of::bytea), steps(of::int8),
      created(of::float8), updated(of::float8), spawn(of::bytea), node(of::int8), epoch(of::int8);
  pg_array up_id(of::bytea), up_state(of::text), up_detail(of::bytea), up_steps(of::int8),
      up_updated(of::float8);
  for (const std::string& name : created_) {  // in the order they were created
    const run_row& row = runs_.find(name)->second;
    const run_record& r = row.rec;
    id.bytes(r.id);
    workflow.bytes(r.workflow);
    run_owner.bytes(r.owner);
    script.bytes(r.script);
    hash.bytes(r.code_hash);
    args.bytes(r.args);
    state.bytes(row.state);
    detail.bytes(r.detail);
    steps.integer(r.steps);
    created.real(r.created);
    updated.real(r.updated);
    spawn.bytes(r.spawn);
    if (r.node)
      node.integer(r.node);
    else
      node.null();
    epoch.integer(r.epoch);
  }
  bool ended_any = false;  // a final state: waiters on other nodes are told (NOTIFY)
  for (const auto& [name, row] : runs_) {
    const run_record& r = row.rec;
    if (!row.created && row.dirty) {
      auto st = parse_run_state(row.state);
      ended_any = ended_any || (st && finished(*st));
      up_id.bytes(name);
      up_state.bytes(row.state);
      up_detail.bytes(r.detail);
      up_steps.integer(r.steps);
      up_updated.real(r.updated);
    }
  }
  if (id.size()) {
    out.push_back(
        sql("INSERT INTO luad_runs (id, workflow, owner, script, code_hash, args, state, detail,"
            " steps, created, updated, spawn, node, epoch) SELECT * FROM unnest($1::bytea[],"
            " $2::bytea[], $3::bytea[], $4::bytea[], $5::bytea[], $6::bytea[], $7::text[],"
            " $8::bytea[], $9::int8[], $10::float8[], $11::float8[], $12::bytea[], $13::int8[],"
            " $14::int8[])",
            {id.param(), workflow.param(), run_owner.param(), script.param(), hash.param(),
             args.param(), state.param(), detail.param(), steps.param(), created.param(),
             updated.param(), spawn.param(), node.param(), epoch.param()}));
    if (queued_any_) out.push_back(sql("SELECT pg_notify('luad_claim', '')"));
  }
  if (up_id.size()) {
    out.push_back(
        sql("UPDATE luad_runs r SET state = u.state, detail = u.detail, steps = u.steps,"
            " updated = u.updated FROM unnest($1::bytea[], $2::text[], $3::bytea[], $4::int8[],"
            " $5::float8[]) AS u(id, state, detail, steps, updated) WHERE r.id = u.id",
            {up_id.param(), up_state.param(), up_detail.param(), up_steps.param(),
             up_updated.param()}));
    if (ended_any) out.push_back(sql("SELECT pg_notify('luad_ended', '')"));
  }
  if (!entries_.empty()) {
    pg_array run(of::bytea), step(of::int8), command(of::int8), eargs(of::bytea), estate(of::int8),
        failed(of::int8), result(of::bytea), at(of::float8);
    for (const auto& [k, e] : entries_) {
      run.bytes(e.run);
      step.integer(e.step);
      command.integer(static_cast<std::int64_t>(e.command));
      eargs.bytes(e.args);
      estate.integer(static_cast<std::int64_t>(e.state));
      failed.integer(e.failed ? 1 : 0);
      result.bytes(e.result);
      at.real(e.at);
    }
    out.push_back(
        sql("INSERT INTO luad_journal SELECT * FROM unnest($1::bytea[], $2::int8[], $3::int8[],"
            " $4::bytea[], $5::int8[], $6::int8[], $7::bytea[], $8::float8[])"
            " ON CONFLICT (run, step) DO UPDATE SET command = EXCLUDED.command,"
            " args = EXCLUDED.args, state = EXCLUDED.state, failed = EXCLUDED.failed,"
            " result = EXCLUDED.result, at = EXCLUDED.at",
            {run.param(), step.param(), command.param(), eargs.param(), estate.param(),
             failed.param(), result.param(), at.param()}));
  }
  if (!messages_.empty()) {
    pg_array run(of::bytea), seq(of::int8), sender(of::bytea), topic(of::bytea), payload(of::bytea),
        at(of::float8);
    for (const inbox_message& m : messages_) {
      run.bytes(m.run);
      seq.integer(m.seq);
      sender.bytes(m.sender);
      topic.bytes(m.topic);
      payload.bytes(m.payload);
      at.real(m.at);
    }
    out.push_back(sql(
        "INSERT INTO luad_inbox SELECT * FROM unnest($1::bytea[], $2::int8[],"
        " $3::bytea[], $4::bytea[], $5::bytea[], $6::float8[])",
        {run.param(), seq.param(), sender.param(), topic.param(), payload.param(), at.param()}));
    // Mail from other nodes moved into the inbox: its rows go in the same
    // transaction, so that a crash neither loses nor repeats one.
    pg_array moved(of::int8);
    for (const inbox_message& m : messages_)
      if (m.mail != 0) moved.integer(m.mail);
    if (moved.size())
      out.push_back(sql("DELETE FROM luad_mail WHERE id = ANY($1::int8[])", {moved.param()}));
  }
}

// --- reads -------------------------------------------------------------------------

runtime::result<std::vector<run_record>> pg_read_runs(const pg_blocking_run& run,
                                                      bool unfinished_only) {
  // The condition is the partial index's, word for word, so that it is used.
  std::string text =
      select_runs() +
      (unfinished_only ? " WHERE state NOT IN ('completed', 'failed', 'terminated')" : "") +
      " ORDER BY created, seq";
  pg_batch_result r = run({sql(std::move(text))});
  if (!r) return std::move(r.error());
  std::vector<run_record> out;
  const pg_rows& rows = r->front();
  out.reserve(static_cast<std::size_t>(rows.size()));
  for (int i = 0; i < rows.size(); ++i) {
    auto one = run_on_row(rows, i);
    if (!one) return std::move(one.error());
    out.push_back(std::move(*one));
  }
  return out;
}

runtime::result<run_record> pg_read_run(const pg_blocking_run& run, std::string_view id) {
  pg_batch_result r = run({sql(select_runs() + " WHERE id = $1", {pg_param::bytes(id)})});
  if (!r) return std::move(r.error());
  if (r->front().size() == 0) return journal_no_run(id);
  return run_on_row(r->front(), 0);
}

runtime::result<std::vector<journal_entry>> pg_read_history(const pg_blocking_run& run,
                                                            std::string_view id) {
  // One pipeline is one transaction: the head and the rows are one snapshot.
  pg_batch_result r =
      run({sql("SELECT 1 FROM luad_runs WHERE id = $1", {pg_param::bytes(id)}),
           sql("SELECT step, command, args, state, failed, result, at FROM luad_journal"
               " WHERE run = $1 ORDER BY step",
               {pg_param::bytes(id)})});
  if (!r) return std::move(r.error());
  if ((*r)[0].size() == 0) return journal_no_run(id);
  const pg_rows& rows = (*r)[1];
  std::vector<journal_entry> out;
  out.reserve(static_cast<std::size_t>(rows.size()));
  for (int i = 0; i < rows.size(); ++i) {
    journal_entry e;
    e.run = std::string(id);
    e.step = rows.integer(i, 0);
    auto expected = static_cast<std::int64_t>(out.size());
    if (e.step != expected) {
      return journal_at_step(
          id, expected,
          "missing from the journal (the next row is step " + std::to_string(e.step) + ")");
    }
    std::int64_t command = rows.integer(i, 1), state = rows.integer(i, 3);
    std::int64_t failed = rows.integer(i, 4);
    e.args = rows.bytes(i, 2);
    e.result = rows.bytes(i, 5);
    if (std::string why = journal_entry_fault(command, state, failed, e, true); !why.empty())
      return journal_at_step(id, e.step, why);
    e.command = static_cast<runtime::command_id>(command);
    e.state = static_cast<step_state>(state);
    e.failed = failed != 0;
    e.at = rows.real(i, 6);
    out.push_back(std::move(e));
  }
  return out;
}

runtime::result<std::vector<inbox_message>> pg_read_messages(const pg_blocking_run& run,
                                                             std::string_view id) {
  pg_batch_result r =
      run({sql("SELECT seq, sender, topic, payload, at FROM luad_inbox"
               " WHERE run = $1 ORDER BY seq",
               {pg_param::bytes(id)})});
  if (!r) return std::move(r.error());
  const pg_rows& rows = r->front();
  std::vector<inbox_message> out;
  for (int i = 0; i < rows.size(); ++i) {
    inbox_message m;
    m.run = std::string(id);
    m.seq = rows.integer(i, 0);
    m.sender = rows.bytes(i, 1);
    m.topic = rows.bytes(i, 2);
    m.payload = rows.bytes(i, 3);
    m.at = rows.real(i, 4);
    if (m.seq != static_cast<std::int64_t>(out.size()) || !runtime::valid_message(m.payload))
      return runtime::fail(error_kind::invalid, "journal: run '" + std::string(id) + "' message " +
                                                    std::to_string(out.size()) +
                                                    ": missing, or its payload does not decode");
    out.push_back(std::move(m));
  }
  return out;
}

}  // namespace luad::dispatcher
