// The workflow module: each function through a real process and the values
// dispatcher, math.random's forms and errors, UUID bits, side_effect's results
// and errors; then, against a scripted command sink, the exact commands sent,
// the mapping of given bits, and the replay contract of side_effect.
#include <doctest/doctest.h>

#include <cstdint>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "modules/modules.hpp"
#include "runtime/code.hpp"
#include "runtime/json.hpp"
#include "runtime/message_codec.hpp"
#include "runtime/scheduler.hpp"
#include "tests/support.hpp"

// Values as JSON in failure reports (binary strings cannot be: "(not JSON)").
template <>
struct doctest::StringMaker<std::vector<luad::runtime::value>> {
  static doctest::String convert(const std::vector<luad::runtime::value>& values) {
    auto text = luad::runtime::json_encode(luad::runtime::value(values));
    return text ? text->c_str() : "(not JSON)";
  }
};

namespace {

using luad::runtime::command;
using luad::runtime::command_id;
using luad::runtime::completion;
using luad::runtime::error;
using luad::runtime::error_kind;
using luad::runtime::exit_info;
using luad::runtime::exit_reason;
using luad::runtime::value;
using luad::test::has;
using luad::test::run_lua;

// Runs `source` on the shared engine, expecting a normal exit; returns its results.
std::vector<value> run_ok(const std::string& source, luad::runtime::spawn_options opts = {}) {
  exit_info e = run_lua(source, std::move(opts));
  REQUIRE_MESSAGE(e.reason == exit_reason::normal, e.err.message);
  return e.results;
}

std::string text(const value& v) {
  const auto* s = v.get<std::string>();
  return s ? *s : "(not a string)";
}

std::uint64_t workflow_commands() {
  auto& eng = luad::test::shared_engine();
  return eng.scheduler().stats().commands[static_cast<std::size_t>(command_id::workflow_value)];
}

}  // namespace

TEST_CASE("the workflow module is class workflow, so a workflow-restricted process loads it") {
  CHECK(luad::modules::workflow_module.classes == luad::runtime::workflow);
  luad::runtime::spawn_options o;
  o.ctx.allowed_classes = luad::runtime::workflow_classes;
  auto r = run_ok("return type(require('workflow').now)", std::move(o));
  CHECK(r.at(0) == value("function"));
}

TEST_CASE("workflow.now is the wall clock, answered through a yield") {
  std::uint64_t before = workflow_commands();
  auto r = run_ok(R"(
    local time, workflow = require("time"), require("workflow")
    local a = time.now()
    local w = workflow.now()
    local b = time.now()
    assert(math.type(w) == "float", math.type(w))
    assert(a <= w and w <= b, string.format("%f %f %f", a, w, b))
    return w)");
  CHECK(r.at(0).get<double>());
  CHECK(workflow_commands() >= before + 1);
}

TEST_CASE("workflow.random: math.random's three forms and ranges") {
  auto r = run_ok(R"(
    local workflow = require("workflow")
    for _ = 1, 200 do
      local x = workflow.random()
      assert(math.type(x) == "float" and x >= 0 and x < 1, x)
    end
    local negative, positive = 0, 0
    for _ = 1, 200 do
      local x = workflow.random(0)
      assert(math.type(x) == "integer")
      if x < 0 then negative = negative + 1 else positive = positive + 1 end
    end
    assert(negative > 0 and positive > 0, "random(0) spans the integers")
    local seen = {}
    for _ = 1, 600 do
      local x = workflow.random(6)
      assert(math.type(x) == "integer" and x >= 1 and x <= 6, x)
      seen[x] = true
    end
    for i = 1, 6 do assert(seen[i], "never drew " .. i) end
    for _ = 1, 200 do
      local x = workflow.random(-3, 2)  -- six values: not a power of 2
      assert(x >= -3 and x <= 2, x)
    end
    assert(workflow.random(5, 5) == 5)
    assert(workflow.random(3.0) <= 3)  -- a float with an integer value is accepted
    local wide = workflow.random(math.mininteger, math.maxinteger)
    assert(math.type(wide) == "integer")
    return true)");
  CHECK(r.at(0) == value(true));
}

TEST_CASE("workflow.random raises math.random's argument errors, word for word") {
  // Both are called as lib.random(...) from Lua, so both errors name 'random'.
  auto r = run_ok(R"(
    local workflow = require("workflow")
    local function failure(lib, ...)
      local args = table.pack(...)
      local ok, err = pcall(function()
        local x = lib.random(table.unpack(args, 1, args.n))
        return x
      end)
      assert(not ok, "no error")
      return err
    end
    local cases = {{1, 0}, {0.5}, {"x"}, {nil}, {1, 2, 3}, {2, 1.5}, {-1}, {{}, 1},
                   {math.maxinteger, math.mininteger}}
    local out = {}
    for i, args in ipairs(cases) do
      local n = (i == 4) and 1 or #args
      local want = failure(math, table.unpack(args, 1, n))
      local got = failure(workflow, table.unpack(args, 1, n))
      assert(got == want, string.format("case %d: %q ~= %q", i, got, want))
      out[#out + 1] = got
    end
    return table.concat(out, "\n"))");
  std::string all = text(r.at(0));
  CAPTURE(all);
  CHECK(has(all, "bad argument #1 to 'random' (interval is empty)"));
  CHECK(has(all, "bad argument #1 to 'random' (number has no integer representation)"));
  CHECK(has(all, "wrong number of arguments"));
}

TEST_CASE("workflow.uuid: version 4, RFC 4122 variant, lower-case, unique") {
  auto r = run_ok(R"(
    local workflow = require("workflow")
    local pattern = "^%x%x%x%x%x%x%x%x%-%x%x%x%x%-4%x%x%x%-[89ab]%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$"
    local seen, count = {}, 0
    local variants = {}
    for _ = 1, 2000 do
      local id = workflow.uuid()
      assert(#id == 36 and id:match(pattern), id)
      assert(id == id:lower(), id)
      assert(not seen[id], "repeated " .. id)
      seen[id] = true
      count = count + 1
      variants[id:sub(20, 20)] = true
    end
    -- the variant nibble takes all four values 8, 9, a, b: only two bits are fixed
    assert(variants["8"] and variants["9"] and variants["a"] and variants["b"])
    return count)");
  CHECK(r.at(0) == value(2000));
}

TEST_CASE(
    "workflow.side_effect calls fn once with its arguments and returns copies of its results") {
  auto r = run_ok(R"(
    local time, workflow = require("time"), require("workflow")
    local calls = 0
    local t = {k = "v"}
    local function fn(x, y)
      calls = calls + 1
      return x + y, nil, t, "s", nil
    end
    local n = select("#", workflow.side_effect(fn, 1, 2))
    assert(n == 5, n)
    local a, b, c, d = workflow.side_effect(fn, 40, 2)
    assert(calls == 2, calls)
    assert(a == 42 and b == nil and c.k == "v" and d == "s")
    assert(c ~= t, "a copy, as a message is")
    assert(select("#", workflow.side_effect(function() end)) == 0)
    -- fn may wait, and may yield to a coroutine of the script
    assert(workflow.side_effect(function() time.sleep(0) return "slept" end) == "slept")
    local co = coroutine.wrap(function()
      return workflow.side_effect(function() return coroutine.yield("paused") * 2 end)
    end)
    assert(co() == "paused")
    assert(co(21) == 42)
    -- pids travel too
    local process = require("process")
    assert(workflow.side_effect(process.self) == process.self())
    return calls)");
  CHECK(r.at(0) == value(2));
}

TEST_CASE("workflow.side_effect: an error fn raises propagates as it was raised") {
  auto r = run_ok(R"(
    local workflow = require("workflow")
    local calls = 0
    local ok, err = pcall(workflow.side_effect, function()
      calls = calls + 1
      error("boom")
    end)
    assert(not ok and err:find("boom"), tostring(err))
    local raised = {code = 7}
    local ok2, err2 = pcall(workflow.side_effect, function() error(raised) end)
    assert(not ok2 and err2 == raised, "the very value raised")
    return calls)");
  CHECK(r.at(0) == value(1));
}

TEST_CASE("workflow.side_effect refuses results a message cannot carry, naming which") {
  auto r = run_ok(R"(
    local time, workflow = require("time"), require("workflow")
    local function failure(fn)
      local ok, err = pcall(workflow.side_effect, fn)
      assert(not ok, "no error")
      assert(type(err) == "table", tostring(err))
      return err.kind .. ": " .. err.message
    end
    local timer = time.after(100, "never")
    local out = {
      failure(function() return 1, function() end end),
      failure(function() return {f = print} end),
      failure(function() return coroutine.create(print) end),
      failure(function() return timer end),
    }
    time.cancel(timer)
    return table.concat(out, "\n"))");
  std::string all = text(r.at(0));
  CAPTURE(all);
  CHECK(has(all,
            "invalid: workflow.side_effect: result 2 cannot be recorded: cannot send a "
            "function"));
  CHECK(has(all, "result 1 cannot be recorded: cannot send a function (at .f)"));
  CHECK(has(all, "cannot send a thread"));
  CHECK(has(all, "cannot send a full userdata"));

  luad::runtime::spawn_options small;
  small.ctx.limits.message_bytes = 1000;
  auto big = run_ok(R"(
    local workflow = require("workflow")
    local ok, err = pcall(workflow.side_effect, function()
      return string.rep("x", 600), string.rep("y", 600)
    end)
    -- a hundred nils encode in a few hundred bytes, but each holds a slot
    local ok2, err2 = pcall(workflow.side_effect, function() return table.unpack({}, 1, 100) end)
    return err.kind, err.message, err2.kind)",
                    std::move(small));
  CHECK(big.at(0) == value("limit"));
  CHECK(has(text(big.at(1)),
            "result 2 cannot be recorded: all results together are larger than "
            "1000 bytes (limits.message_size)"));
  CHECK(big.at(2) == value("limit"));
}

TEST_CASE("a workflow value where no wait is possible raises the failed answer") {
  auto r = run_ok(R"(
    local workflow = require("workflow")
    local ok, err = pcall(string.gsub, "a", "a", function() return workflow.uuid() end)
    assert(not ok)
    return err.kind, err.message)");
  CHECK(r.at(0) == value("invalid"));
  CHECK(has(text(r.at(1)), "cannot wait here"));
}

// --- against a scripted command sink --------------------------------------------

namespace {

// Answers each command with the next of a list given in advance and keeps
// what was asked: a stand-in for a journal that replays a run.
class scripted_sink final : public luad::runtime::command_sink {
 public:
  struct answer {
    value v;
    std::optional<error> err;
  };
  explicit scripted_sink(std::vector<answer> answers) : answers_(std::move(answers)) {}

  void submit(command&& cmd, completion&& done) const override {
    std::optional<answer> next;
    {
      std::lock_guard lock(mu_);
      seen_.push_back(std::move(cmd));
      if (next_ < answers_.size()) next = std::move(answers_[next_++]);
    }
    if (!next) {
      done.fail(error{error_kind::internal, "the scripted answers ran out", false, {}});
    } else if (next->err) {
      done.fail(std::move(*next->err));
    } else {
      done.succeed(std::move(next->v));
    }
  }
  std::vector<command> seen() const {
    std::lock_guard lock(mu_);
    return seen_;
  }

 private:
  mutable std::mutex mu_;
  mutable std::vector<answer> answers_;
  mutable std::size_t next_ = 0;
  mutable std::vector<command> seen_;
};

// Runs `source` on a scheduler of its own whose commands go to `sink`.
exit_info run_against(const scripted_sink& sink, const std::string& source) {
  auto opts = luad::runtime::scheduler_options::with_workers(1);
  opts.modules = luad::modules::all();
  luad::runtime::scheduler sched(opts, sink);
  sched.start();
  auto done = std::make_shared<std::promise<exit_info>>();
  auto fut = done->get_future();
  luad::runtime::spawn_options so;
  so.on_exit = [done](const exit_info& e) { done->set_value(e); };
  REQUIRE(sched.spawn(luad::runtime::compile(source, "scripted.lua"), std::move(so)).ok());
  return luad::test::wait_exit(fut);
}

std::string encoded(const value& v) {
  std::string out;
  luad::runtime::encode_value(v, out);
  return out;
}

value kind_of(const command& c) {
  const value* k = c.args.find("kind");
  return k ? *k : value();
}

}  // namespace

TEST_CASE("replay: a side_effect whose first wait is answered with results does not call fn") {
  value recorded = value::array{encoded(10), encoded("twenty"), encoded(value())};
  scripted_sink sink({{value(value::map{{"value", recorded}}), {}}});
  exit_info e = run_against(sink, R"(
    local workflow = require("workflow")
    local calls = 0
    local a, b, c = workflow.side_effect(function()
      calls = calls + 1
      return 1, 2
    end)
    return calls, a, b, c == nil)");
  REQUIRE_MESSAGE(e.reason == exit_reason::normal, e.err.message);
  CHECK(e.results == std::vector<value>{0, 10, "twenty", true});
  auto seen = sink.seen();
  REQUIRE(seen.size() == 1);  // nothing recorded: the results were known
  CHECK(seen[0].id == command_id::workflow_value);
  CHECK(seen[0].args == value(value::map{{"kind", "side_effect"}}));
}

TEST_CASE("live: side_effect asks, runs fn, records its results and returns the answer") {
  // The first wait is answered nil ("run it"); the second's answer is what
  // side_effect returns, even where it differs from what fn returned.
  scripted_sink sink({{value(), {}}, {value::array{encoded("from the journal")}, {}}});
  exit_info e = run_against(sink, R"(
    local workflow = require("workflow")
    local calls = 0
    local got = workflow.side_effect(function(x)
      calls = calls + 1
      return x, 2
    end, 1)
    return calls, got)");
  REQUIRE_MESSAGE(e.reason == exit_reason::normal, e.err.message);
  CHECK(e.results == std::vector<value>{1, "from the journal"});
  auto seen = sink.seen();
  REQUIRE(seen.size() == 2);
  CHECK(seen[0].args == value(value::map{{"kind", "side_effect"}}));
  CHECK(kind_of(seen[1]) == value("side_effect"));
  const value* sent = seen[1].args.find("value");
  REQUIRE(sent);
  const auto* results = sent->get<value::array>();
  REQUIRE(results);
  REQUIRE(results->size() == 2);
  std::int64_t first = 0, second = 0;
  CHECK(luad::runtime::decode_integer(text((*results)[0]), first));
  CHECK(luad::runtime::decode_integer(text((*results)[1]), second));
  CHECK(first == 1);
  CHECK(second == 2);
}

TEST_CASE("an erroring fn records nothing: only the first wait is sent") {
  scripted_sink sink({{value(), {}}});
  exit_info e = run_against(sink, R"(
    local workflow = require("workflow")
    return pcall(workflow.side_effect, function() error("boom", 0) end))");
  REQUIRE_MESSAGE(e.reason == exit_reason::normal, e.err.message);
  CHECK(e.results == std::vector<value>{false, "boom"});
  CHECK(sink.seen().size() == 1);
}

TEST_CASE("given bits map to values exactly as Lua's math.random maps them") {
  const auto bits = [](std::uint64_t b) {
    return scripted_sink::answer{value(static_cast<std::int64_t>(b)), {}};
  };
  scripted_sink sink({
      bits(~std::uint64_t{0}),        // random(): the largest float below 1
      bits(std::uint64_t{1} << 63),   // random(0): the integer itself
      bits(7), bits(6), bits(0x10c),  // random(1, 5): 7 and 6 (past 4) drawn again; 0x10c & 7 = 4
      bits(0xff),                     // random(10, 17): a power-of-2 span masks, never redraws
      bits(0),                        // random(): 0
  });
  exit_info e = run_against(sink, R"(
    local workflow = require("workflow")
    return workflow.random(), workflow.random(0), workflow.random(1, 5), workflow.random(10, 17),
           workflow.random())");
  REQUIRE_MESSAGE(e.reason == exit_reason::normal, e.err.message);
  CHECK(e.results == std::vector<value>{1.0 - 0x1.0p-53, std::int64_t{INT64_MIN}, 5, 17, 0.0});
  for (const command& c : sink.seen()) CHECK(c.args == value(value::map{{"kind", "random"}}));
  CHECK(sink.seen().size() == 7);
}

TEST_CASE("now and uuid are made from their answers; a failed or malformed answer raises") {
  value halves = value::array{static_cast<std::int64_t>(0x0123456789abcdefULL),
                              static_cast<std::int64_t>(0xfedcba9876543210ULL)};
  scripted_sink sink({
      {value(1234.5), {}},
      {halves, {}},
      {value(), error{error_kind::unavailable, "the journal is down", true, {}}},
      {value("not bits"), {}},
  });
  exit_info e = run_against(sink, R"(
    local workflow = require("workflow")
    local now, id = workflow.now(), workflow.uuid()
    local ok, err = pcall(workflow.now)
    local ok2, err2 = pcall(workflow.random)
    return now, id, ok, err.kind, err.message, ok2, err2.kind, err2.message)");
  REQUIRE_MESSAGE(e.reason == exit_reason::normal, e.err.message);
  CHECK(e.results == std::vector<value>{1234.5, "01234567-89ab-4def-bedc-ba9876543210", false,
                                        "unavailable", "the journal is down", false, "internal",
                                        "workflow.random: the answer is not an integer"});
  auto seen = sink.seen();
  REQUIRE(seen.size() == 4);
  CHECK(kind_of(seen[0]) == value("now"));
  CHECK(kind_of(seen[1]) == value("uuid"));
}
