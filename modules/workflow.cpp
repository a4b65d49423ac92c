// The `workflow` module: the nondeterministic values a durable workflow may use
// (now, random, uuid, side_effect) and version, each one a workflow.value command answered
// by the values dispatcher (dispatcher/values.hpp).
//
// DESIGN. A durable run journals every command with its answer and, after a
// crash, replays the script answering each command from the journal; so every
// value here comes from an answer and is made into Lua values here, never in
// the dispatcher. random and uuid are answered with raw bits (64 and 128),
// which random maps to its range exactly as Lua 5.4.4's math.random does; its
// rejection sampling waits again for fresh bits. side_effect(fn, ...) waits
// twice. First {kind = "side_effect"} without a value asks whether the results
// are known: the live dispatcher answers nil ("run it"), a replaying journal
// answers the recorded results and fn is not called again. Then fn(...) runs
// in the process (lua_callk: it may wait itself; an error it raises propagates
// and nothing is recorded) and {kind = "side_effect", value = results}
// records its results; what side_effect returns is that answer, so a live run
// and a replay return the same copies. Results travel as an array of
// message-codec encodings, one per result; an answer holding them is that
// array or a map whose `value` is that array. A failed answer raises: a
// workflow cannot go on without its value.
#include <algorithm>
#include <cstdint>
#include <new>
#include <string>

#include "modules/modules.hpp"
#include "runtime/command.hpp"
#include "runtime/lua_value.hpp"
#include "runtime/message_codec.hpp"
#include "runtime/process.hpp"
#include "runtime/result.hpp"
#include "runtime/yield.hpp"

namespace luad::modules {

namespace {

using runtime::error;
using runtime::error_kind;
using runtime::param_type;
using runtime::value;

// The args of a workflow.value command without a value.
value request(const char* kind) { return value(value::map{{"kind", kind}}); }

// What handle_result leaves for `answered`: [true, results...] or [false, err].
int push_failed(lua_State* L, const error& e) {
  lua_pushboolean(L, 0);
  runtime::push_error(L, e);
  return 2;
}

// Answers of the wrong shape (a dispatcher or journal bug). Constants, so that
// nothing with a destructor is alive if pushing one raises.
error bad_answer(const char* message) { return {error_kind::internal, message, false, {}}; }
const error k_bad_now = bad_answer("workflow.now: the answer is not a number");
const error k_bad_random = bad_answer("workflow.random: the answer is not an integer");
const error k_bad_uuid = bad_answer("workflow.uuid: the answer is not two integers");
const error k_bad_results = bad_answer("workflow.side_effect: the answer is not a list of results");
const error k_too_many = bad_answer("workflow.side_effect: too many results");
const error k_unrecorded = bad_answer("workflow.side_effect: the results were not recorded");
const error k_bad_version = bad_answer("workflow.version: the answer is not an integer");
const error k_bad_start = bad_answer("workflow.start: the answer is not a run id");
const error k_bad_wait = bad_answer("workflow.wait: the answer is not a list of results");
const error k_not_durable{error_kind::invalid,
                          "workflow.start: children are for durable runs only (process.spawn "
                          "starts a plain child elsewhere)",
                          false,
                          {}};
const error k_not_continued =
    bad_answer("workflow.continue_as_new: the run was not ended (a server bug)");

// The continuation of every binding here, after its last wait: returns the
// results handle_result pushed, or raises its error.
int answered(lua_State* L, int, lua_KContext pushed) {
  int n = static_cast<int>(pushed);
  if (!lua_toboolean(L, -n)) return lua_error(L);  // the error is on top
  lua_remove(L, -n);
  return n - 1;
}

// --- now ----------------------------------------------------------------------

class now_yield final
    : public runtime::pooled_yield<now_yield, runtime::command_id::workflow_value> {
 public:
  static constexpr const char* type_name = "workflow.now";
  const char* kind = "now";  // or "monotonic" (time.monotonic under luad test's fakes)

  value args() const { return request(kind); }
  int handle_result(lua_State* L, const value& v, const error* err) override {
    if (err) return push_failed(L, *err);
    const auto* seconds = v.get<double>();
    if (!seconds) return push_failed(L, k_bad_now);
    lua_pushboolean(L, 1);
    lua_pushnumber(L, *seconds);
    return 2;
  }
};

int clock_value(lua_State* L, const char* kind) {
  now_yield::acquire(L)->kind = kind;
  return runtime::yield_command(L, answered);
}

int workflow_now(lua_State* L) { return clock_value(L, "now"); }

// --- random -------------------------------------------------------------------

class random_yield final
    : public runtime::pooled_yield<random_yield, runtime::command_id::workflow_value> {
 public:
  static constexpr const char* type_name = "workflow.random";
  enum class form : std::uint8_t { real, integer, range };
  form shape = form::real;
  lua_Unsigned low = 0, span = 0;  // range: [low, low + span], wrapping as Lua's does

  value args() const { return request("random"); }
  int handle_result(lua_State* L, const value& v, const error* err) override {
    if (err) return push_failed(L, *err);
    const auto* bits = v.get<std::int64_t>();
    if (!bits) return push_failed(L, k_bad_random);
    auto rv = static_cast<lua_Unsigned>(*bits);
    switch (shape) {
      case form::real:  // the top 53 bits, scaled to [0, 1) (lmathlib.c, I2d)
        lua_pushboolean(L, 1);
        lua_pushnumber(L, static_cast<lua_Number>(rv >> 11) * 0x1.0p-53);
        return 2;
      case form::integer:
        lua_pushboolean(L, 1);
        lua_pushinteger(L, static_cast<lua_Integer>(rv));
        return 2;
      case form::range: break;
    }
    // lmathlib.c, project: mask to the smallest 2^b - 1 not below `span`; a
    // value past `span` is drawn again.
    lua_Unsigned lim = span;
    for (int shift = 1; shift < 64; shift *= 2) lim |= lim >> shift;
    if ((rv &= lim) > span) {
      lua_pushlightuserdata(L, static_cast<runtime::yield_object*>(this));
      return -1;
    }
    lua_pushboolean(L, 1);
    lua_pushinteger(L, static_cast<lua_Integer>(rv + low));
    return 2;
  }
};

// math.random's three forms and its argument errors (lmathlib.c, math_random).
int workflow_random(lua_State* L) {
  auto shape = random_yield::form::real;
  lua_Integer low = 1, up = 0;
  switch (lua_gettop(L)) {
    case 0: break;
    case 1:
      up = luaL_checkinteger(L, 1);
      shape = up == 0 ? random_yield::form::integer : random_yield::form::range;
      break;
    case 2:
      low = luaL_checkinteger(L, 1);
      up = luaL_checkinteger(L, 2);
      shape = random_yield::form::range;
      break;
    default: return luaL_error(L, "wrong number of arguments");
  }
  if (shape == random_yield::form::range) luaL_argcheck(L, low <= up, 1, "interval is empty");
  random_yield* y = random_yield::acquire(L);
  y->shape = shape;
  y->low = static_cast<lua_Unsigned>(low);
  y->span = static_cast<lua_Unsigned>(up) - static_cast<lua_Unsigned>(low);
  return runtime::yield_command(L, answered);
}

// --- uuid ---------------------------------------------------------------------

class uuid_yield final
    : public runtime::pooled_yield<uuid_yield, runtime::command_id::workflow_value> {
 public:
  static constexpr const char* type_name = "workflow.uuid";

  value args() const { return request("uuid"); }
  // The answer is {high, low}: 128 bits as two integers.
  int handle_result(lua_State* L, const value& v, const error* err) override {
    if (err) return push_failed(L, *err);
    const auto* halves = v.get<value::array>();
    const std::int64_t* high =
        halves && halves->size() == 2 ? (*halves)[0].get<std::int64_t>() : nullptr;
    const std::int64_t* low = high ? (*halves)[1].get<std::int64_t>() : nullptr;
    if (!low) return push_failed(L, k_bad_uuid);
    unsigned char b[16];
    for (int i = 0; i < 8; ++i) {
      b[i] = static_cast<unsigned char>(static_cast<std::uint64_t>(*high) >> (56 - 8 * i));
      b[8 + i] = static_cast<unsigned char>(static_cast<std::uint64_t>(*low) >> (56 - 8 * i));
    }
    b[6] = (b[6] & 0x0f) | 0x40;  // version 4 (RFC 4122, 4.4)
    b[8] = (b[8] & 0x3f) | 0x80;  // variant 10x
    static constexpr char hex[] = "0123456789abcdef";
    char text[36];
    char* out = text;
    for (int i = 0; i < 16; ++i) {
      if (i == 4 || i == 6 || i == 8 || i == 10) *out++ = '-';
      *out++ = hex[b[i] >> 4];
      *out++ = hex[b[i] & 0x0f];
    }
    lua_pushboolean(L, 1);
    lua_pushlstring(L, text, sizeof text);
    return 2;
  }
};

int workflow_uuid(lua_State* L) {
  uuid_yield::acquire(L);
  return runtime::yield_command(L, answered);
}

// --- version ------------------------------------------------------------------

// version(change, min, max): the live dispatcher answers max, and a durable
// run records {kind = "version", change, min, max} with it. A replay answers
// the recorded version; a history from before the call (no record of that
// change at that step) answers 0 without taking a step, and the journal
// refuses a recorded version outside [min, max] (dispatcher/durable.cpp).
class version_yield final
    : public runtime::pooled_yield<version_yield, runtime::command_id::workflow_value> {
 public:
  static constexpr const char* type_name = "workflow.version";
  std::string change;
  std::int64_t min = 0, max = 0;

  value args() const {
    return value(value::map{{"kind", "version"}, {"change", change}, {"min", min}, {"max", max}});
  }
  int handle_result(lua_State* L, const value& v, const error* err) override {
    if (err) return push_failed(L, *err);
    const auto* version = v.get<std::int64_t>();
    if (!version) return push_failed(L, k_bad_version);
    lua_pushboolean(L, 1);
    lua_pushinteger(L, static_cast<lua_Integer>(*version));
    return 2;
  }
};

int workflow_version(lua_State* L) {
  size_t len = 0;
  const char* change = luaL_checklstring(L, 1, &len);
  luaL_argcheck(L, len > 0 && len <= 256, 1, "a change id of 1 to 256 bytes");
  lua_Integer min = luaL_checkinteger(L, 2);
  lua_Integer max = luaL_checkinteger(L, 3);
  luaL_argcheck(L, 0 <= min && min <= max, 2, "0 <= min <= max");
  version_yield* y = version_yield::acquire(L);
  try {
    y->change.assign(change, len);
  } catch (const std::bad_alloc&) {
    lua_pop(L, 1);
    y->release();
    return luaL_error(L, "not enough memory");
  }
  y->min = min;
  y->max = max;
  return runtime::yield_command(L, answered);
}

// --- side_effect --------------------------------------------------------------

// Pushes true and the results an answer holds (see DESIGN), or false and why not.
int push_recorded(lua_State* L, const value& v) {
  const value* list = v.find("value");
  const auto* results = (list ? list : &v)->get<value::array>();
  bool readable = results != nullptr;
  for (std::size_t i = 0; readable && i < results->size(); ++i) {
    const auto* bytes = (*results)[i].get<std::string>();
    readable = bytes && runtime::valid_message(*bytes);
  }
  if (!readable) return push_failed(L, k_bad_results);
  // (A failure's 2 slots are free already: a call leaves LUA_MINSTACK, and
  // side_effect_ran keeps 5.)
  if (results->size() >= LUAI_MAXSTACK || !lua_checkstack(L, static_cast<int>(results->size()) + 1))
    return push_failed(L, k_too_many);
  lua_pushboolean(L, 1);
  for (const value& r : *results) runtime::push_message(L, *r.get<std::string>());
  return static_cast<int>(results->size()) + 1;
}

class side_effect_yield final
    : public runtime::pooled_yield<side_effect_yield, runtime::command_id::workflow_value> {
 public:
  static constexpr const char* type_name = "workflow.side_effect";
  bool asking = true;    // the first wait; false: the second, recording `results`
  value::array results;  // one message-codec encoding per result of fn

  value args() {
    value::map m{{"kind", "side_effect"}};
    if (!asking) m.emplace_back("value", std::move(results));
    return {std::move(m)};
  }
  // Asking, nil means "run it" and pushes nothing.
  int handle_result(lua_State* L, const value& v, const error* err) override {
    if (err) return push_failed(L, *err);
    if (asking && v.is_nil()) return 0;
    if (v.is_nil()) return push_failed(L, k_unrecorded);
    return push_recorded(L, v);
  }
};

// Encodes the `count` values at the bottom of the stack into `out` (one
// message-codec encoding each), within the process's message size limit for
// all of them; `what` names one in errors ("workflow.side_effect: result"),
// `all` all of them ("all results").
// Each value costs its encoding and its slot, so a million nils are no
// cheaper than what they hold.
runtime::status record(lua_State* L, int count, value::array& out, const char* what,
                       const char* all) noexcept {
  try {
    const std::size_t max = runtime::process::of(L)->context().limits.message_bytes;
    std::size_t left = max;
    out.reserve(std::min(static_cast<std::size_t>(count), max / sizeof(value)));
    std::string bytes, why;
    for (int i = 1; i <= count; ++i) {
      bytes.clear();
      bool fits = left >= sizeof(value);
      if (fits) left -= sizeof(value);
      if (!fits || !runtime::encode_message(L, i, bytes, why, left)) {
        bool size = !fits || why.starts_with("message larger than");
        if (size) {
          why = std::string(all) + " together are larger than " + std::to_string(max) +
                " bytes (limits.message_size)";
        }
        return runtime::fail(
            size ? error_kind::limit : error_kind::invalid,
            std::string(what) + " " + std::to_string(i) + " cannot be recorded: " + why);
      }
      left -= bytes.size();
      out.emplace_back(std::move(bytes));
    }
    return runtime::done{};
  } catch (const std::bad_alloc&) {
    return runtime::fail(error_kind::limit, std::string(what) + "s: out of memory");
  }
}

// With the yield object `y` on top of the `count` values: records them into
// `out` and yields, or releases `y` and raises why they cannot be recorded.
int record_and_yield(lua_State* L, int count, runtime::yield_object& y, value::array& out,
                     const char* what, const char* all) {
  int n = 0;
  {
    runtime::status ok = record(L, count, out, what, all);
    if (!ok) {
      lua_pop(L, 1);  // the yield object acquire pushed
      y.release();
      n = runtime::push_failure(L, ok.error());
    }
  }
  if (n != 0) return lua_error(L);  // the error on top (or Lua's memory error)
  return runtime::yield_command(L, answered);
}

// fn returned: the stack holds its results and nothing else. Records them.
int side_effect_ran(lua_State* L, int, lua_KContext) {
  int count = lua_gettop(L);
  // A call with any number of results leaves no free slot: the yield object,
  // then `nil, err` (push_failure) or the answer's [false, err].
  luaL_checkstack(L, 5, "too many results");
  side_effect_yield* y = side_effect_yield::acquire(L);
  y->asking = false;
  return record_and_yield(L, count, *y, y->results, "workflow.side_effect: result", "all results");
}

// After the first wait: [fn, args...] and the `pushed` values of the answer.
int side_effect_asked(lua_State* L, int status, lua_KContext pushed) {
  if (pushed != 0) return answered(L, status, pushed);  // recorded: fn is not run
  lua_callk(L, lua_gettop(L) - 1, LUA_MULTRET, 0, side_effect_ran);
  return side_effect_ran(L, LUA_OK, 0);
}

int workflow_side_effect(lua_State* L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  side_effect_yield::acquire(L);
  return runtime::yield_command(L, side_effect_asked);
}

// --- continue_as_new ----------------------------------------------------------

// continue_as_new(...): the run ends here, completed, and a new run of the same
// script starts with `...` as its args and an empty journal (a durable run's
// server does it, and kills this process: the answer never comes back unless
// it failed). Outside a durable run the values dispatcher refuses it.
class continue_yield final
    : public runtime::pooled_yield<continue_yield, runtime::command_id::workflow_value> {
 public:
  static constexpr const char* type_name = "workflow.continue_as_new";
  value::array args_;  // one message-codec encoding per arg

  value args() {
    return value(value::map{{"kind", "continue_as_new"}, {"args", std::move(args_)}});
  }
  int handle_result(lua_State* L, const value&, const error* err) override {
    if (err) return push_failed(L, *err);
    return push_failed(L, k_not_continued);
  }
};

int workflow_continue_as_new(lua_State* L) {
  int count = lua_gettop(L);
  luaL_checkstack(L, 5, "too many arguments");
  continue_yield* y = continue_yield::acquire(L);  // (on top: the args stay at 1..count)
  return record_and_yield(L, count, *y, y->args_, "workflow.continue_as_new: argument",
                          "all arguments");
}

// --- children -----------------------------------------------------------------

// What handle_result leaves for `answered` when the binding returns `nil, e`
// rather than raise: [true, nil, e].
int push_returned_failure(lua_State* L, const error& e) {
  lua_pushboolean(L, 1);
  lua_pushnil(L);
  runtime::push_error(L, e);
  return 3;
}

// start(script, ...): a durable child run of `script` (found as process.spawn
// finds it) with `...` as its args, owned and limited as this run is. The
// durable sink names it from this run and the step and the server starts it;
// the answer is its run id, or an error returned as nil, err.
class start_yield final
    : public runtime::pooled_yield<start_yield, runtime::command_id::workflow_value> {
 public:
  static constexpr const char* type_name = "workflow.start";
  std::string script;
  value::array args_;  // one message-codec encoding per arg

  value args() {
    return value(
        value::map{{"kind", "start"}, {"script", std::move(script)}, {"args", std::move(args_)}});
  }
  int handle_result(lua_State* L, const value& v, const error* err) override {
    if (err) return push_returned_failure(L, *err);
    lua_pushboolean(L, 1);
    const auto* run = v.get<std::string>();
    if (!run) return lua_pop(L, 1), push_failed(L, k_bad_start);
    lua_pushlstring(L, run->data(), run->size());
    return 2;
  }
};

int workflow_start(lua_State* L) {
  luaL_checkstring(L, 1);
  if (!runtime::process::of(L)->durable()) {
    int n = runtime::push_failure(L, k_not_durable);
    return n < 0 ? lua_error(L) : n;
  }
  luaL_checkstack(L, 5, "too many arguments");
  start_yield* y = start_yield::acquire(L);  // (on top of the script and the args)
  int n = 0;
  {
    runtime::result<std::string> path = runtime::fail(error_kind::internal, "");
    try {
      std::string root;
      path = child_script_path(L, lua_tostring(L, 1), root);
    } catch (const std::bad_alloc&) {
      path = runtime::fail(error_kind::limit, "workflow.start: out of memory");
    } catch (const std::exception& e) {
      path = runtime::fail(error_kind::invalid, std::string("workflow.start: ") + e.what());
    }
    if (path) {
      y->script = std::move(*path);
    } else {
      lua_pop(L, 1);
      y->release();
      n = runtime::push_failure(L, path.error());
    }
  }
  if (n != 0) return n < 0 ? lua_error(L) : n;
  lua_remove(L, 1);  // the args at 1..count, the yield object above them
  return record_and_yield(L, lua_gettop(L) - 1, *y, y->args_, "workflow.start: argument",
                          "all arguments");
}

// wait(run [, timeout]): a step that ends when run `run` (a child, or any
// durable run of the same owner) has ended: its results, or nil and its
// error (kind `timeout` when `timeout` seconds pass first). A run that
// continued as new is followed to the run it continued as.
class wait_yield final
    : public runtime::pooled_yield<wait_yield, runtime::command_id::workflow_value> {
 public:
  static constexpr const char* type_name = "workflow.wait";
  std::string run;
  double timeout = 0;

  value args() {
    value::map m{{"kind", "wait"}, {"run", std::move(run)}};
    if (timeout > 0) m.emplace_back("timeout", timeout);
    return value(std::move(m));
  }
  int handle_result(lua_State* L, const value& v, const error* err) override {
    if (err) return push_returned_failure(L, *err);
    lua_pushboolean(L, 1);
    const auto* results = v.get<value::array>();
    if (!results) return lua_pop(L, 1), push_failed(L, k_bad_wait);
    if (results->size() >= LUAI_MAXSTACK ||
        !lua_checkstack(L, static_cast<int>(results->size()) + 1))
      return lua_pop(L, 1), push_failed(L, k_bad_wait);
    for (const value& r : *results) runtime::push_value(L, r);
    return static_cast<int>(results->size()) + 1;
  }
};

int workflow_wait(lua_State* L) {
  std::size_t len = 0;
  const char* run = luaL_checklstring(L, 1, &len);
  lua_Number timeout = luaL_optnumber(L, 2, 0);
  luaL_argcheck(L, len > 0 && len <= 256, 1, "a run id of 1 to 256 bytes");
  luaL_argcheck(L, timeout >= 0 && timeout <= 1e9, 2, "seconds from 0 (none) to 1e9");
  wait_yield* y = wait_yield::acquire(L);
  try {
    y->run.assign(run, len);
  } catch (const std::bad_alloc&) {
    lua_pop(L, 1);
    y->release();
    return luaL_error(L, "not enough memory");
  }
  y->timeout = static_cast<double>(timeout);
  return runtime::yield_command(L, answered);
}

// --- the module ---------------------------------------------------------------

constexpr param_type now_returns[] = {{"seconds", "number"}};
constexpr param_type random_params[] = {{"m", "integer?"}, {"n", "integer?"}};
constexpr param_type random_returns[] = {{"x", "number"}};
constexpr param_type uuid_returns[] = {{"uuid", "string"}};
constexpr param_type side_effect_params[] = {{"fn", "function"}, {"...", "any"}};
constexpr param_type side_effect_returns[] = {{"...", "any"}};
constexpr param_type version_params[] = {
    {"change", "string"}, {"min", "integer"}, {"max", "integer"}};
constexpr param_type version_returns[] = {{"version", "integer"}};
constexpr param_type continue_params[] = {{"...", "any"}};
constexpr param_type start_params[] = {{"script", "string"}, {"...", "any"}};
constexpr param_type start_returns[] = {{"run", "string?"}, {"err", "error?"}};
constexpr param_type wait_params[] = {{"run", "string"}, {"timeout", "number?"}};
constexpr param_type wait_returns[] = {{"...", "any"}};

constexpr runtime::function_type manifest[] = {
    {"now",
     {},
     now_returns,
     "Wall-clock time in seconds since the Unix epoch, recorded: a replay sees the same time."},
    {"random", random_params, random_returns,
     "Like math.random (a float in [0, 1), an integer in [1, m] or [m, n], any integer for "
     "random(0)), from recorded random bits."},
    {"uuid", {}, uuid_returns, "A random RFC 4122 version 4 UUID (lower-case), recorded."},
    {"side_effect", side_effect_params, side_effect_returns,
     "Calls fn(...) and returns its results, recorded (copied as messages are): a replay returns "
     "them without calling fn again. Errors fn raises propagate unrecorded."},
    {"version", version_params, version_returns,
     "Which version of a code change this run follows: max when first reached, the recorded "
     "version on replay, 0 for a history from before the change (an error if outside "
     "[min, max])."},
    {"continue_as_new",
     continue_params,
     {},
     "Ends this durable run (completed) and starts a new run of the same script with these "
     "args and an empty journal. Does not return."},
    {"start", start_params, start_returns,
     "Starts a durable child run of script (found as process.spawn finds it) with these args, "
     "owned and limited as this run; returns its run id, or nil, err. Durable runs only."},
    {"wait", wait_params, wait_returns,
     "Waits, as a recorded step, for durable run `run` (of the same owner) to end: its results, "
     "or nil, err (its error; kind timeout after `timeout` seconds). Durable runs only."},
};

runtime::module_exports build() {
  return {{{"now", workflow_now},
           {"random", workflow_random},
           {"uuid", workflow_uuid},
           {"side_effect", workflow_side_effect},
           {"version", workflow_version},
           {"continue_as_new", workflow_continue_as_new},
           {"start", workflow_start},
           {"wait", workflow_wait}},
          {now_yield::type(), random_yield::type(), uuid_yield::type(), side_effect_yield::type(),
           version_yield::type(), continue_yield::type(), start_yield::type(), wait_yield::type()}};
}

}  // namespace

int side_effect_call(lua_State* L) { return workflow_side_effect(L); }
int workflow_start_call(lua_State* L) { return workflow_start(L); }
int workflow_now_call(lua_State* L) { return workflow_now(L); }
int monotonic_call(lua_State* L) { return clock_value(L, "monotonic"); }

extern const runtime::module_def workflow_module{
    "workflow", "Clocks, randomness and side effects a durable workflow can replay.",
    runtime::workflow, manifest, build};

}  // namespace luad::modules
