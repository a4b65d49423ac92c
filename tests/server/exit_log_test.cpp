// The log line for each failed process, and its rate limit.
#include "server/exit_log.hpp"

#include <doctest/doctest.h>
#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/spdlog.h>

#include <boost/asio/io_context.hpp>

#include <memory>
#include <string>

#include "runtime/logging.hpp"
#include "tests/support.hpp"

namespace {

using luad::test::has;
namespace rt = luad::runtime;

// The logger's lines of `warn` and above, whatever level the tests run it at.
struct capture {
  std::shared_ptr<spdlog::sinks::ringbuffer_sink_mt> sink =
      std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(1024);
  spdlog::level::level_enum was = rt::logger().level();
  capture() {
    for (auto& s : rt::logger().sinks()) s->set_level(was);  // the others stay as quiet
    rt::logger().sinks().push_back(sink);
    rt::logger().set_level(spdlog::level::warn);
  }
  ~capture() {
    std::erase(rt::logger().sinks(), std::static_pointer_cast<spdlog::sinks::sink>(sink));
    rt::logger().set_level(was);
  }
  capture(const capture&) = delete;
  capture& operator=(const capture&) = delete;
  std::size_t count(std::string_view part) const {
    std::size_t n = 0;
    for (const auto& l : sink->last_formatted()) n += has(l, part) ? 1 : 0;
    return n;
  }
};

rt::exit_info failed(std::uint64_t serial, rt::exit_reason reason, std::string message) {
  rt::exit_info e;
  e.id = rt::pid{0, serial};
  e.reason = reason;
  e.err = rt::error{rt::error_kind::runtime, std::move(message), false, {}};
  return e;
}

}  // namespace

TEST_CASE("exit log: one line per failed process, with its script, workflow and message") {
  capture log;
  boost::asio::io_context io;
  luad::server::exit_log exits(io);
  rt::process_context wf;
  wf.owner = "workflow:ticker";
  exits.on_exit(failed(7, rt::exit_reason::error, "tick.lua:3: boom\nforged line"), wf,
                "/srv/tick.lua");
  exits.on_exit(failed(8, rt::exit_reason::limit, "memory limit exceeded"), {}, "/srv/big.lua");
  rt::exit_info normal;
  normal.id = rt::pid{0, 9};
  exits.on_exit(normal, wf, "/srv/ok.lua");
  exits.on_exit(failed(10, rt::exit_reason::killed, "killed"), wf, "/srv/k.lua");
  CHECK(log.count("process 0.7 (/srv/tick.lua, workflow ticker) ended: error (runtime): "
                  "tick.lua:3: boom\\nforged line") == 1);
  CHECK(log.count("process 0.8 (/srv/big.lua) ended: limit (runtime): memory limit exceeded") == 1);
  // (By the whole "process 0.9 ": a line's timestamp, such as 13:08:40.912,
  // can hold "0.9", which failed this check in CI on 5 Dec.)
  CHECK(log.count("process 0.9 ") == 0);   // normal exits are not logged
  CHECK(log.count("process 0.10 ") == 0);  // nor kills
}

TEST_CASE("exit log: a crash loop logs a burst, then a summary of what it left out") {
  capture log;
  boost::asio::io_context io;
  luad::server::exit_log exits(io, std::chrono::milliseconds(20));
  for (std::uint64_t i = 1; i <= 1000; ++i)
    exits.on_exit(failed(i, rt::exit_reason::error, "crash"), {}, "/srv/loop.lua");
  std::size_t logged = log.count("/srv/loop.lua) ended: error");
  CHECK(logged >= luad::server::exit_log::burst);
  CHECK(logged <= luad::server::exit_log::burst + 2);  // (refilled while looping)
  CHECK(exits.suppressed_total() == 1000 - logged);
  io.run_for(std::chrono::milliseconds(200));
  CHECK(log.count(std::to_string(1000 - logged) + " similar lines suppressed") == 1);
}
