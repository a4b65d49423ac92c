// Command registry: routing, unknown ids, the frozen rule.
#include "dispatcher/registry.hpp"

#include <doctest/doctest.h>

#include <atomic>
#include <optional>
#include <stdexcept>

namespace {

using namespace luad::dispatcher;

// Records the outcome a completion delivers (a hand-made double of a process).
struct one_outcome final : completion_target {
  std::atomic<int> refs{0};
  std::optional<luad::runtime::outcome> got;
  void add_ref() noexcept override { refs++; }
  void release_ref() noexcept override { refs--; }
  void complete(std::uint64_t, luad::runtime::outcome&& o) noexcept override { got = std::move(o); }
  bool awaits(std::uint64_t) const noexcept override { return !got; }
};

struct echo final : handler {
  void submit(command&& cmd, completion&& done) override { done.succeed(std::move(cmd.args)); }
};

}  // namespace

TEST_CASE("the registry routes by id, refuses late or double registration") {
  registry r;
  echo e;
  r.add(command_id::clock_sleep, e);
  CHECK_THROWS_AS(r.add(command_id::clock_sleep, e), std::logic_error);
  r.freeze();
  CHECK_THROWS_AS(r.add(command_id::clock_sleep, e), std::logic_error);
  one_outcome rec;
  r.submit({command_id::clock_sleep, luad::runtime::value(3.5)}, completion(&rec));
  REQUIRE(rec.got);
  CHECK(rec.got->val == luad::runtime::value(3.5));
  CHECK(rec.refs == 0);
}

TEST_CASE("an unknown command id completes with an error, not a crash") {
  registry r;
  r.freeze();
  one_outcome rec;
  r.submit({command_id::clock_sleep, {}}, completion(&rec));
  REQUIRE(rec.got);
  REQUIRE(rec.got->err);
  CHECK(rec.got->err->kind == luad::runtime::error_kind::invalid);
  one_outcome rec2;
  r.submit({static_cast<command_id>(999), {}}, completion(&rec2));
  REQUIRE(rec2.got);
  CHECK(rec2.got->err->kind == luad::runtime::error_kind::invalid);
}

TEST_CASE("a dropped completion completes with canceled") {
  one_outcome rec;
  { completion c(&rec); }
  REQUIRE(rec.got);
  CHECK(rec.got->err->kind == luad::runtime::error_kind::canceled);
  CHECK(rec.refs == 0);
}
