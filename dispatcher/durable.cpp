// A durable run's command sink (see durable.hpp): replay from the journal,
// then journal-before-resume for live commands. Its inbox (messages) is in
// durable_inbox.cpp.
#include "dispatcher/durable.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <utility>

#include "dispatcher/durable_parts.hpp"
#include "dispatcher/journal_rules.hpp"
#include "runtime/code.hpp"
#include "runtime/json.hpp"
#include "runtime/message_codec.hpp"

namespace luad::dispatcher {

namespace durable_parts {

double unix_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string text_of(const value& v) {
  auto j = runtime::json_encode(v);
  return j ? *j : std::string("null");
}

bool has_kind(const value& args, std::string_view kind) {
  const value* k = args.find("kind");
  const std::string* s = k ? k->get<std::string>() : nullptr;
  return s && *s == kind;
}

bool is_receive(const command& c) {
  return c.id == command_id::workflow_value && has_kind(c.args, "receive");
}

}  // namespace durable_parts

using namespace durable_parts;

namespace {

std::string encoded(const value& v) {
  std::string bytes;
  runtime::encode_value(v, bytes);
  return bytes;
}

// Moves field `key` out of the map `args` (nil if it is not there).
value take_field(value& args, std::string_view key) {
  auto* m = std::get_if<value::map>(&args.data);
  if (!m) return {};
  for (auto& [k, v] : *m)
    if (k == key) return std::move(v);
  return {};
}

// side_effect's first yield: "has this already run?" (no `value` yet).
bool is_side_effect_probe(const command& c) {
  return c.id == command_id::workflow_value && has_kind(c.args, "side_effect") &&
         !c.args.find("value");
}

bool is_side_effect_record(const journal_entry& e) {
  if (e.command != command_id::workflow_value) return false;
  std::optional<value> args = runtime::decode_value(e.args);
  return args && has_kind(*args, "side_effect");
}

// workflow.version's command: the change id and the versions the code knows.
struct version_ask {
  std::string change;
  std::int64_t min = 0, max = 0;
};
std::optional<version_ask> version_of(const command& c) {
  if (c.id != command_id::workflow_value || !has_kind(c.args, "version")) return std::nullopt;
  const value* change = c.args.find("change");
  const value* min = c.args.find("min");
  const value* max = c.args.find("max");
  if (!change || !change->get<std::string>() || !min || !min->get<std::int64_t>() || !max ||
      !max->get<std::int64_t>())
    return std::nullopt;
  return version_ask{*change->get<std::string>(), *min->get<std::int64_t>(),
                     *max->get<std::int64_t>()};
}

// Whether `e` recorded workflow.version for `change` (whatever min and max).
bool is_version_record(const journal_entry& e, const std::string& change) {
  if (e.command != command_id::workflow_value) return false;
  std::optional<value> args = runtime::decode_value(e.args);
  const value* c = args && has_kind(*args, "version") ? args->find("change") : nullptr;
  return c && c->get<std::string>() && *c->get<std::string>() == change;
}

// The report of a run whose history follows version `recorded` (0: from
// before the change) of `ask.change`, which the code no longer supports.
std::string version_report(const version_ask& ask, std::int64_t recorded, std::size_t step,
                           const std::string& code_hash) {
  return text_of(
      value::map{{"reason", "nondeterminism"},
                 {"step", static_cast<std::int64_t>(step)},
                 {"message", "the history follows version " + std::to_string(recorded) +
                                 " of change '" + ask.change + "'; this code supports " +
                                 std::to_string(ask.min) + " to " + std::to_string(ask.max)},
                 {"code_hash", code_hash}});
}

// The request with `Idempotency-Key: key` added, unless the script set one.
value with_idempotency_key(value args, const std::string& key) {
  auto* m = std::get_if<value::map>(&args.data);
  if (!m) return args;
  auto named = [](const std::string& n) {
    return n.size() == 15 && std::equal(n.begin(), n.end(), "idempotency-key", [](char a, char b) {
             return std::tolower(static_cast<unsigned char>(a)) == b;
           });
  };
  for (auto& [field, v] : *m) {
    if (field != "headers") continue;
    if (auto* h = std::get_if<value::map>(&v.data)) {
      for (const auto& kv : *h)
        if (named(kv.first)) return args;
      h->emplace_back("Idempotency-Key", key);
    } else if (auto* a = std::get_if<value::array>(&v.data)) {
      for (const value& pair : *a) {
        const auto* p = pair.get<value::array>();
        const std::string* n = p && !p->empty() ? (*p)[0].get<std::string>() : nullptr;
        if (n && named(*n)) return args;
      }
      a->push_back(value::array{"Idempotency-Key", key});
    }
    return args;
  }
  m->emplace_back("headers", value::map{{"Idempotency-Key", key}});
  return args;
}

void hand_over(completion& done, outcome&& o) {
  if (o.err) {
    done.fail(std::move(*o.err));
  } else {
    done.succeed(std::move(o.val));
  }
}

const error k_stopped{error_kind::canceled, "the durable run stopped (see its state)", false, {}};

}  // namespace

// --- a live step ------------------------------------------------------------

// Receives a live command's outcome, journals it, then hands it to the
// process; counted like every completion_target.
struct durable_sink::step_done final : completion_target {
  step_done(std::shared_ptr<const durable_sink> s, journal_entry e, completion d)
      : sink(std::move(s)), entry(std::move(e)), done(std::make_shared<completion>(std::move(d))) {}

  void add_ref() noexcept override { refs.fetch_add(1, std::memory_order_relaxed); }
  void release_ref() noexcept override {
    if (refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }
  bool awaits(std::uint64_t) const noexcept override { return !done->abandoned(); }
  void complete(std::uint64_t, outcome&& o) noexcept override {
    // A process that was killed (the daemon stopping) sees no outcome, so
    // none is journaled: a sleep cut short stays `started`, with its deadline.
    if (done->abandoned()) return;
    try {
      entry.state = step_state::done;
      record_outcome(entry, o);
      entry.at = unix_now();
      auto result = std::make_shared<outcome>(std::move(o));
      std::int64_t step = entry.step;
      sink->journal_.append(
          std::move(entry), [s = sink, d = done, result, step](runtime::status st) {
            if (!st)
              return s->stop(text_of(value::map{
                  {"reason", "journal"}, {"step", step}, {"message", st.error().message}}));
            hand_over(*d, std::move(*result));
          });
    } catch (const std::exception& e) {
      sink->stop(text_of(value::map{{"reason", "journal"}, {"message", e.what()}}));
    }
  }

  std::shared_ptr<const durable_sink> sink;
  journal_entry entry;
  std::shared_ptr<completion> done;
  std::atomic<std::uint32_t> refs{0};
};

// --- the sink ----------------------------------------------------------------

durable_sink::durable_sink(std::string run, std::string code_hash,
                           std::vector<journal_entry> history, const runtime::command_sink& live,
                           journal_backend& journal, stop_fn stop, std::size_t max_steps,
                           continue_fn on_continue, child_hooks children)
    : run_(std::move(run)),
      code_hash_(std::move(code_hash)),
      history_(std::move(history)),
      live_(live),
      journal_(journal),
      stop_fn_(std::move(stop)),
      max_steps_(max_steps),
      continue_fn_(std::move(on_continue)),
      children_(std::move(children)) {}

std::optional<std::uint64_t> durable_sink::random_seed() const {
  return runtime::content_hash(run_ + "/math.random");
}

std::int64_t durable_sink::steps() const {
  std::lock_guard lock(mu_);
  return static_cast<std::int64_t>(next_);
}

bool durable_sink::replaying() const {
  std::lock_guard lock(mu_);
  return next_ < history_.size();
}

void durable_sink::stop(std::string report) const {
  {
    std::lock_guard lock(mu_);
    if (stopped_) return;
    stopped_ = true;
  }
  if (stop_fn_) stop_fn_(std::move(report));
}

journal_entry durable_sink::entry_for(const command& cmd, std::size_t step) const {
  journal_entry e;
  e.run = run_;
  e.step = static_cast<std::int64_t>(step);
  e.command = cmd.id;
  e.args = encoded(cmd.args);
  e.at = unix_now();
  return e;
}

void durable_sink::submit(command&& cmd, completion&& done) const {
  std::size_t step;
  bool from_journal;
  std::optional<version_ask> before_change;
  bool continuing = cmd.id == command_id::workflow_value && has_kind(cmd.args, "continue_as_new");
  {
    std::lock_guard lock(mu_);
    if (stopped_) return done.fail(k_stopped);
    if (continuing) {
      // Not a step: the run ends here. The next run's id comes from this
      // run's and the step, so a replay of this point names the same run.
      step = next_;
      if (!continue_fn_ || next_ < history_.size())  // (a history that goes on past it)
        continuing = false;
    }
    // A side_effect probe takes a step only when the journal answers it.
    bool probe = is_side_effect_probe(cmd);
    from_journal = next_ < history_.size();
    if (probe && !from_journal) return done.succeed();  // live: run the function
    // A version asked where the journal recorded something else: a history
    // from before the change, version 0, and no step.
    if (auto v = from_journal ? version_of(cmd) : std::nullopt;
        v && !is_version_record(history_[next_], v->change)) {
      if (v->min <= 0) return done.succeed(value(std::int64_t{0}));
      before_change = std::move(v);
      step = next_;
    } else {
      if (!from_journal && max_steps_ != 0 && next_ >= max_steps_) {
        return done.fail(error{error_kind::limit,
                               "the run's journal is full (" + std::to_string(max_steps_) +
                                   " steps, [limits] journal_steps)",
                               false,
                               {}});
      }
      step = next_++;
    }
  }
  if (cmd.id == command_id::workflow_value && has_kind(cmd.args, "continue_as_new")) {
    if (!continuing) {
      if (!continue_fn_)
        return done.fail(error{error_kind::invalid,
                               "workflow.continue_as_new: this run cannot continue as new",
                               false,
                               {}});
      stop(text_of(value::map{{"reason", "nondeterminism"},
                              {"step", static_cast<std::int64_t>(step)},
                              {"message", "continue_as_new where the journal goes on"},
                              {"code_hash", code_hash_}}));
      return done.fail(k_stopped);
    }
    // A chain of runs that take no step would make runs as fast as the disk
    // takes them; with a step each, it goes no faster than one run's steps.
    if (step == 0)
      return done.fail(error{error_kind::invalid,
                             "workflow.continue_as_new: a run continues as new only after a step "
                             "of its own (a sleep, a store call, ...)",
                             false,
                             {}});
    std::string key = run_ + "/" + std::to_string(step);
    char next[19];
    std::snprintf(next, sizeof next, "r-%016llx",
                  static_cast<unsigned long long>(runtime::content_hash(key)));
    value args = take_field(cmd.args, "args");
    return continue_fn_(next, std::move(args), std::move(done));
  }
  if (before_change) {  // (stop takes the lock)
    stop(version_report(*before_change, 0, step, code_hash_));
    return done.fail(k_stopped);
  }
  if (from_journal) return replay(std::move(cmd), std::move(done), step);
  live(std::move(cmd), std::move(done), step);
}

void durable_sink::replay(command&& cmd, completion&& done, std::size_t step) const {
  const journal_entry& e = history_[step];
  bool probe = is_side_effect_probe(cmd);
  std::optional<version_ask> version = version_of(cmd);
  bool same = probe     ? is_side_effect_record(e)
              : version ? is_version_record(e, version->change)
                        : e.command == cmd.id && e.args == encoded(cmd.args);
  if (!same) {
    std::optional<value> expected = runtime::decode_value(e.args);
    stop(text_of(value::map{
        {"reason", "nondeterminism"},
        {"step", static_cast<std::int64_t>(step)},
        {"expected", value::map{{"command", std::string(command_name(e.command))},
                                {"args", expected ? *expected : value()}}},
        {"got", value::map{{"command", std::string(command_name(cmd.id))}, {"args", cmd.args}}},
        {"code_hash", code_hash_}}));
    return done.fail(k_stopped);
  }
  if (e.state == step_state::started) {
    // Interrupted by the crash. A sleep ends at its journaled deadline; any
    // other command runs again (at least once).
    if (cmd.id == command_id::clock_sleep) {
      std::optional<value> deadline = runtime::decode_value(e.result);
      const double* at = deadline ? deadline->get<double>() : nullptr;
      double left = at ? std::max(0.0, *at - unix_now()) : 0.0;
      journal_entry finished = e;
      auto* target = new step_done(shared_from_this(), std::move(finished), std::move(done));
      live_.submit(command{command_id::clock_sleep, value(left)}, completion(target));
      return;
    }
    return live(std::move(cmd), std::move(done), step);
  }
  std::optional<outcome> o = read_outcome(e);
  if (!o) {
    stop(text_of(value::map{{"reason", "journal"},
                            {"step", static_cast<std::int64_t>(step)},
                            {"message", "the journal entry's result cannot be read back"}}));
    return done.fail(k_stopped);
  }
  if (probe) o = outcome::success(value::map{{"value", std::move(o->val)}});
  if (version) {
    const std::int64_t* v = o->err ? nullptr : o->val.get<std::int64_t>();
    if (!v || *v < version->min || *v > version->max) {
      stop(version_report(*version, v ? *v : -1, step, code_hash_));
      return done.fail(k_stopped);
    }
  }
  hand_over(done, std::move(*o));
}

void durable_sink::live(command&& cmd, completion&& done, std::size_t step) const {
  if (is_receive(cmd)) return receive_live(std::move(cmd), std::move(done), step);
  if (cmd.id == command_id::workflow_value &&
      (has_kind(cmd.args, "start") || has_kind(cmd.args, "wait")))
    return child_live(std::move(cmd), std::move(done), step);
  journal_entry e = entry_for(cmd, step);
  auto self = shared_from_this();
  if (cmd.id == command_id::store_op) {
    // One transaction for the write and its entry. `unavailable` means
    // neither landed (the disk): the run stops rather than see an outcome its
    // journal does not hold.
    auto d = std::make_shared<completion>(std::move(done));
    value args = cmd.args;
    journal_.apply_and_append(std::move(e), std::move(args), [self, d, step](outcome o) {
      if (o.err && o.err->kind == error_kind::unavailable) {
        self->stop(text_of(value::map{{"reason", "journal"},
                                      {"step", static_cast<std::int64_t>(step)},
                                      {"message", o.err->message}}));
        return d->fail(k_stopped);
      }
      hand_over(*d, std::move(o));
    });
    return;
  }
  if (cmd.id == command_id::clock_sleep) {
    // The deadline first, so a sleep cut by a crash keeps it.
    const double* seconds = cmd.args.get<double>();
    double deadline = unix_now() + (seconds ? *seconds : 0.0);
    journal_entry started = e;
    started.state = step_state::started;
    started.result = encoded(value(deadline));
    auto d = std::make_shared<completion>(std::move(done));
    journal_.append(std::move(started), [self, d, e = std::move(e), cmd = std::move(cmd),
                                         step](runtime::status st) mutable {
      if (!st) {
        self->stop(text_of(value::map{{"reason", "journal"},
                                      {"step", static_cast<std::int64_t>(step)},
                                      {"message", st.error().message}}));
        return d->fail(k_stopped);
      }
      auto* target = new step_done(self, std::move(e), std::move(*d));
      self->live_.submit(std::move(cmd), completion(target));
    });
    return;
  }
  if (cmd.id == command_id::fetch_request)
    cmd.args = with_idempotency_key(std::move(cmd.args), run_ + "-" + std::to_string(step));
  auto* target = new step_done(self, std::move(e), std::move(done));
  live_.submit(std::move(cmd), completion(target));
}

void durable_sink::child_live(command&& cmd, completion&& done, std::size_t step) const {
  bool starting = has_kind(cmd.args, "start");
  // (Through the step's target: a refusal is journaled as every outcome is.)
  completion target(new step_done(shared_from_this(), entry_for(cmd, step), std::move(done)));
  if (starting ? !children_.start : !children_.wait)
    return target.fail(error{error_kind::invalid,
                             starting ? "workflow.start: this run cannot start children"
                                      : "workflow.wait: this run cannot wait for runs",
                             false,
                             {}});
  if (starting) {
    // The same id for the same run and step: a replay that reaches this
    // start again live (the crash came before its step was journaled) names
    // the child that was started already.
    char child[19];
    std::snprintf(child, sizeof child, "c-%016llx",
                  static_cast<unsigned long long>(
                      runtime::content_hash(run_ + "/" + std::to_string(step) + "/child")));
    return children_.start(child, std::move(cmd.args), std::move(target));
  }
  const value* run = cmd.args.find("run");
  const value* timeout = cmd.args.find("timeout");
  const std::string* id = run ? run->get<std::string>() : nullptr;
  const double* seconds = timeout ? timeout->get<double>() : nullptr;
  if (!id) return target.fail(error{error_kind::invalid, "workflow.wait: no run id", false, {}});
  children_.wait(*id, seconds ? *seconds : 0.0, std::move(target));
}

void durable_sink::answer_receive(journal_entry e, completion done, value got) const {
  completion c(new step_done(shared_from_this(), std::move(e), std::move(done)));
  c.succeed(std::move(got));
}

}  // namespace luad::dispatcher
