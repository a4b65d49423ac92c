// The journal's rules shared by every backend (journal_rules.hpp).
#include "dispatcher/journal_rules.hpp"

#include "runtime/message_codec.hpp"

namespace luad::dispatcher {

using runtime::error_kind;

namespace {

bool known_command(std::int64_t id) {
  return id > 0 && id < static_cast<std::int64_t>(runtime::command_id::max_id) &&
         runtime::command_name(static_cast<runtime::command_id>(id)) != "unknown";
}

bool known_state(std::int64_t s) {
  return s == static_cast<std::int64_t>(step_state::started) ||
         s == static_cast<std::int64_t>(step_state::done);
}

}  // namespace

void journal_write::finish(runtime::outcome o) {
  if (applied) {
    applied(std::move(o));
  } else if (written) {
    written(o.err ? runtime::status(std::move(*o.err)) : runtime::status(runtime::done{}));
  }
}

const std::string& journal_write::run() const {
  return std::visit(
      [](const auto& w) -> const std::string& {
        using T = std::decay_t<decltype(w)>;
        if constexpr (std::is_same_v<T, run_record>)
          return w.id;
        else
          return w.run;
      },
      what);
}

runtime::error journal_no_run(std::string_view run) {
  return runtime::fail(error_kind::not_found, "journal: no run '" + std::string(run) + "'");
}

runtime::error journal_at_step(std::string_view run, std::int64_t step, const std::string& why) {
  return runtime::fail(error_kind::invalid, "journal: run '" + std::string(run) + "' step " +
                                                std::to_string(step) + ": " + why);
}

std::string journal_entry_fault(std::int64_t command, std::int64_t state, std::int64_t failed,
                                const journal_entry& e, bool with_result) {
  if (!known_command(command)) return "unknown command id " + std::to_string(command);
  if (!known_state(state)) return "unknown state " + std::to_string(state);
  if (failed != 0 && failed != 1) return "unknown failed flag " + std::to_string(failed);
  if (!runtime::valid_message(e.args)) return "the args do not decode";
  bool needs_result = state == static_cast<std::int64_t>(step_state::done) || !e.result.empty();
  if (with_result && needs_result && !runtime::valid_message(e.result))
    return "the result does not decode";
  return {};
}

std::string journal_entry_fault(const journal_entry& e, bool with_result) {
  return journal_entry_fault(static_cast<std::int64_t>(e.command),
                             static_cast<std::int64_t>(e.state), e.failed ? 1 : 0, e, with_result);
}

runtime::status check_new_run(const run_record& r) {
  if (r.id.empty()) return runtime::fail(error_kind::invalid, "journal: a run needs an id");
  if (!r.args.empty() && !runtime::valid_message(r.args)) {
    return runtime::fail(error_kind::invalid,
                         "journal: run '" + r.id + "': the args do not decode");
  }
  return runtime::done{};
}

runtime::status check_message(const inbox_message& m) {
  if (runtime::valid_message(m.payload)) return runtime::done{};
  return runtime::fail(error_kind::invalid, "journal: run '" + m.run + "' message " +
                                                std::to_string(m.seq) +
                                                ": the payload does not decode");
}

runtime::error message_taken(const inbox_message& m) {
  return runtime::fail(error_kind::invalid, "journal: run '" + m.run + "' message " +
                                                std::to_string(m.seq) +
                                                " already recorded, or no such run");
}

runtime::status step_rule(const journal_entry& e, std::int64_t steps, std::int64_t earlier) {
  if (e.step == steps) return runtime::done{};
  if (e.step < 0 || e.step > steps) {
    return journal_at_step(e.run, e.step,
                           "not the run's next step (" + std::to_string(steps) + ")");
  }
  // An earlier step: only its `started` row may be completed.
  if (earlier == static_cast<std::int64_t>(step_state::done))
    return journal_at_step(e.run, e.step, "already done");
  if (earlier != static_cast<std::int64_t>(step_state::started))
    return journal_at_step(e.run, e.step, "no row to complete");
  if (e.state != step_state::done) return journal_at_step(e.run, e.step, "already started");
  return runtime::done{};
}

void record_outcome(journal_entry& e, const runtime::outcome& o) {
  e.result.clear();
  e.failed = o.err != nullptr;
  if (!o.err) {
    runtime::encode_value(o.val, e.result);
    return;
  }
  runtime::value::map err;
  err.emplace_back("kind", std::string(runtime::kind_name(o.err->kind)));
  err.emplace_back("message", o.err->message);
  err.emplace_back("retryable", o.err->retryable);
  runtime::encode_value(runtime::value(std::move(err)), e.result);
}

std::optional<runtime::outcome> read_outcome(const journal_entry& e) {
  std::optional<runtime::value> v = runtime::decode_value(e.result);
  if (!v) return std::nullopt;
  if (!e.failed) return runtime::outcome::success(std::move(*v));
  const runtime::value* kind = v->find("kind");
  const runtime::value* message = v->find("message");
  const runtime::value* retryable = v->find("retryable");
  auto k = kind && kind->get<std::string>() ? runtime::kind_from_name(*kind->get<std::string>())
                                            : std::nullopt;
  if (!k || !message || !message->get<std::string>()) return std::nullopt;
  bool r = retryable && retryable->get<bool>() && *retryable->get<bool>();
  return runtime::outcome::failure(runtime::error{*k, *message->get<std::string>(), r, {}});
}

}  // namespace luad::dispatcher
