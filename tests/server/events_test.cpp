// server/events: the remembered exits and the log backlog are bounded in
// count and in bytes (the newest entry always stays).
#include "server/events.hpp"

#include <doctest/doctest.h>

#include <string>

using luad::runtime::exit_info;
using luad::runtime::exit_reason;
using luad::runtime::pid;
using luad::runtime::value;
using luad::server::events;

namespace {

exit_info exit_with(std::uint64_t serial, std::size_t bytes) {
  exit_info e{pid{0, serial}, exit_reason::normal, {}, {}};
  e.results.emplace_back(std::string(bytes, 'x'));
  return e;
}

}  // namespace

TEST_CASE("remembered exits are bounded in bytes as well as in count") {
  boost::asio::io_context io;
  events ev(io);
  ev.set_bounds({100, 1 << 20, 100, 1 << 20});
  for (std::uint64_t i = 1; i <= 20; ++i) ev.on_submitted_exit(exit_with(i, 100 << 10));
  events::kept k = ev.kept_now();
  CHECK(k.exit_bytes <= std::size_t{1} << 20);
  CHECK(k.exits >= 8);  // ~100 KiB each
  CHECK(k.exits <= 10);
  // One exit larger than the bound is still kept (alone).
  ev.on_submitted_exit(exit_with(99, 2 << 20));
  k = ev.kept_now();
  CHECK(k.exits == 1);
  CHECK(k.exit_bytes >= std::size_t{2} << 20);
  CHECK(k.exit_bytes == events::exit_footprint(exit_with(99, 2 << 20)));
  // And the count bound still holds.
  ev.set_bounds({3, 0, 100, 1 << 20});
  for (std::uint64_t i = 100; i < 110; ++i) ev.on_submitted_exit(exit_with(i, 10));
  CHECK(ev.kept_now().exits == 3);
}

TEST_CASE("the log backlog is bounded in bytes as well as in lines") {
  boost::asio::io_context io;
  events ev(io);
  ev.set_bounds({100, 1 << 20, 1000, 256 << 10});
  std::string text(10 << 10, 'y');
  for (int i = 0; i < 100; ++i)
    ev.tap()->on_log({7, "0.7", "", luad::runtime::log_level::info, text, ""});
  events::kept k = ev.kept_now();
  CHECK(k.log_bytes <= std::size_t{256} << 10);
  CHECK(k.log_lines >= 20);
  CHECK(k.log_lines <= 25);
  ev.set_bounds({100, 1 << 20, 5, 0});
  ev.tap()->on_log({7, "0.7", "", luad::runtime::log_level::info, "short", ""});
  CHECK(ev.kept_now().log_lines == 5);
}
