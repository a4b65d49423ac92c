// process.recv beside process.receive: a message posted from outside any
// process (as `luad send` does) has no sender; recv answers nil for it.
#include <doctest/doctest.h>

#include <string>

#include "runtime/message_codec.hpp"
#include "runtime/post.hpp"
#include "runtime/process.hpp"
#include "server/engine.hpp"
#include "tests/support.hpp"

using luad::runtime::exit_reason;
using luad::runtime::value;

TEST_CASE("process.recv: a message from outside any process comes with a nil sender") {
  luad::server::engine eng(luad::runtime::scheduler_options::with_workers(2));
  auto fut = luad::test::spawn_lua(eng, R"(
    local process = require("process")
    local topic, payload, from = process.recv("outside", 10)
    local m = process.receive("again", 10)
    return topic, payload, from == nil, type(m.from))");
  std::string bytes;
  luad::runtime::encode_value(value(42), bytes);
  auto post = [&](const char* topic) {
    luad::runtime::process* p = nullptr;
    REQUIRE(luad::test::eventually([&] {
      eng.scheduler().visit([&](luad::runtime::process& q) {
        if (!p) {
          q.add_ref();
          p = &q;
        }
      });
      return p != nullptr;
    }));
    auto st = luad::runtime::post(*p, luad::runtime::pid{}, topic, bytes);
    p->release_ref();
    REQUIRE(st);
  };
  post("outside");
  post("again");
  auto e = luad::test::wait_exit(fut);
  INFO(e.err.message);
  REQUIRE(e.reason == exit_reason::normal);
  // receive's msg.from stays what it was: the empty pid, a light userdata.
  CHECK(e.results ==
        std::vector<value>{value("outside"), value(42), value(true), value("userdata")});
}
