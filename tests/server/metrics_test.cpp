// The metrics: the exposition written from a stats document (escaping,
// histograms, parts left out), a live daemon's series after spawns, exits,
// store writes, fetches, queued messages and workflow restarts, promtool on
// what `luad stats --format prometheus` prints and on what the listener
// serves, `--format` errors, and a metrics address that cannot be bound.
#include "server/metrics.hpp"

#include <doctest/doctest.h>

#include <cmath>
#include <stdexcept>
#include <string>

#include "tests/http_server.hpp"
#include "tests/server/daemon_support.hpp"
#include "tests/server/metrics_support.hpp"

using namespace luad_test;
using namespace luad_metrics_test;
using luad::server::prometheus_text;

namespace {

// The config lines of a daemon with a metrics listener on a free port.
const std::string k_metrics = "[metrics]\nlisten = \"127.0.0.1:0\"\n";

}  // namespace

TEST_CASE("metrics: the exposition of a stats document: types, labels, escapes, histograms") {
  json::object doc = json::parse(R"({
    "uptime": 2.5,
    "processes": {"alive": 2, "by_state": {"waiting": 2}, "spawned": 7, "exited": 5,
                  "exits": {"normal": 4, "error": 1}},
    "store": {"commit_seconds": {"count": 3, "sum": 0.0125,
                                 "buckets": {"0.005": 1, "0.01": 2, "+Inf": 3}}},
    "code": {"watching": "polling"},
    "workflows": {"restarts": {"a \"b\"\\c\nd": 4}}
  })")
                         .as_object();
  std::string text = prometheus_text(doc);
  INFO(text);
  CHECK(has(text,
            "# HELP luad_processes_spawned_total Processes started.\n"
            "# TYPE luad_processes_spawned_total counter\n"
            "luad_processes_spawned_total 7\n"));
  CHECK(has(text, "# TYPE luad_uptime_seconds gauge\nluad_uptime_seconds 2.5\n"));
  CHECK(has(text, "luad_process_exits_total{reason=\"error\"} 1\n"));
  // The states a process can be in are always there, at 0 when none is.
  CHECK(has(text, "luad_processes{state=\"waiting\"} 2\n"));
  CHECK(has(text, "luad_processes{state=\"running\"} 0\n"));
  CHECK(has(text,
            "# TYPE luad_store_commit_duration_seconds histogram\n"
            "luad_store_commit_duration_seconds_bucket{le=\"0.005\"} 1\n"
            "luad_store_commit_duration_seconds_bucket{le=\"0.01\"} 2\n"
            "luad_store_commit_duration_seconds_bucket{le=\"+Inf\"} 3\n"
            "luad_store_commit_duration_seconds_sum 0.0125\n"
            "luad_store_commit_duration_seconds_count 3\n"));
  CHECK(has(text, "luad_code_watch_mode{mode=\"polling\"} 1\n"));
  CHECK(has(text, "luad_code_watch_mode{mode=\"inotify\"} 0\n"));
  // A label value with a quote, a backslash and a newline, escaped.
  CHECK(has(text, "luad_workflow_restarts_total{workflow=\"a \\\"b\\\"\\\\c\\nd\"} 4\n"));
  // The sum of another family is not a family of its own; absent parts are left out.
  CHECK_FALSE(has(text, "exited"));
  CHECK_FALSE(has(text, "luad_fetch"));
  CHECK(luad::server::unexposed(doc).empty());
  doc["processes"].as_object()["new_counter"] = 1;
  CHECK(luad::server::unexposed(doc) == std::vector<std::string>{"processes.new_counter"});
  shell_result check = promtool_check(text);
  INFO(check.out);
  CHECK(check.code == 0);
}

TEST_CASE("metrics: a daemon's series count its spawns, exits, store, fetches and mailboxes") {
  luad::test::http_server web;
  std::uint16_t dead = free_port();  // nothing listens there: refused
  running_daemon d(
      k_metrics +
          "[[profile]]\nname = \"web\"\npermissions = [\"http:127.0.0.1\", \"store:t\"]\n"
          "[[workflow]]\nname = \"flaky\"\nscript = \"scripts/flaky.lua\"\n"
          "backoff = 0.01\nintensity = 1000\n",
      {{"scripts/flaky.lua", "require('time').sleep(0.02) error('again')\n"}});
  client c(d.socket);
  REQUIRE(d.d->metrics_port() != 0);
  for (int i = 0; i < 3; ++i) c.call("spawn", {{"source", "return 1"}, {"wait", true}});
  c.call("spawn", {{"source", "error('boom')"}, {"wait", true}});
  json::value r = c.call(
      "spawn", {{"source",
                 "local http, store, base, dead = require('http'), require('store'), ...\n"
                 "assert(http.get(base .. '/status/200')) assert(http.get(base .. '/status/404'))\n"
                 "local ok, e = http.get(dead) assert(e.kind == 'unavailable', e.message)\n"
                 "assert(store.set('k', 'hello')) return true"},
                {"args", {web.url(), "http://127.0.0.1:" + std::to_string(dead) + "/"}},
                {"profile", "web"},
                {"wait", true}});
  REQUIRE(get(r, "/result/reason") == "normal");
  // Two receivers that never take their messages: three for one, two for the other.
  for (int n : {3, 2}) {
    std::string pid = pid_of(c.call("spawn", {{"source", "require('process').receive('never')"}}));
    for (int i = 0; i < n; ++i) c.call("send", {{"to", pid}, {"topic", "other"}, {"payload", i}});
  }
  REQUIRE(eventually([&] {
    return sample(http_get(d.d->metrics_port(), "/metrics").body,
                  "luad_workflow_restarts_total{workflow=\"flaky\"}") >= 2;
  }));

  std::string text = http_get(d.d->metrics_port(), "/metrics").body;
  INFO(text);
  // The flaky workflow's supervisor and children spawn too: at least ours.
  CHECK(sample(text, "luad_processes_spawned_total") >= 6);
  CHECK(sample(text, "luad_process_exits_total{reason=\"normal\"}") >= 4);
  CHECK(sample(text, "luad_process_exits_total{reason=\"error\"}") >= 3);  // boom, flaky twice
  CHECK(sample(text, "luad_processes{state=\"receiving\"}") >= 2);
  // (A supervisor may have an exit queued for a moment: at least ours.)
  CHECK(sample(text, "luad_mailbox_messages") >= 5);
  CHECK(sample(text, "luad_mailbox_messages_max") == 3);
  CHECK(sample(text, "luad_mailbox_bytes") > 0);
  CHECK(sample(text, "luad_fetch_requests_total{outcome=\"2xx\"}") == 1);
  CHECK(sample(text, "luad_fetch_requests_total{outcome=\"4xx\"}") == 1);
  CHECK(sample(text, "luad_fetch_requests_total{outcome=\"refused\"}") == 1);
  CHECK(sample(text, "luad_fetch_requests_total{outcome=\"timeout\"}") == 0);
  CHECK(sample(text, "luad_fetch_duration_seconds_count") == 3);
  CHECK(sample(text, "luad_fetch_duration_seconds_bucket{le=\"+Inf\"}") == 3);
  CHECK(sample(text, "luad_fetch_sent_bytes_total") > 0);
  CHECK(sample(text, "luad_fetch_received_bytes_total") > 0);
  CHECK(sample(text, "luad_commands_total{command=\"fetch.request\"}") == 3);
  CHECK(sample(text, "luad_store_commits_total") >= 1);
  CHECK(sample(text, "luad_store_commit_duration_seconds_count") ==
        sample(text, "luad_store_commits_total"));
  // The key "k" and "hello" as the value codec stores it (a tag, a length, 5 bytes).
  CHECK(sample(text, "luad_store_written_bytes_total") == 8);
  CHECK(sample(text, "luad_store_bytes") == 8);
  CHECK(sample(text, "luad_store_failed_batches_total") == 0);
  CHECK(sample(text, "luad_connections") == 1);
  CHECK(sample(text, "luad_resident_memory_bytes") > 0);
  // Every part of the stats document is some family (or set aside on purpose).
  json::object doc = get(c.call("stats"), "/result").as_object();
  CHECK(luad::server::unexposed(doc).empty());
}

TEST_CASE(
    "metrics: promtool passes what `luad stats --format prometheus` prints and what "
    "GET /metrics serves") {
  running_daemon d(k_metrics);
  client c(d.socket);
  c.call("spawn", {{"source", "require('store').set('a', 1) return 1"}, {"wait", true}});
  cli_result cli = luad_cli(d.socket, "stats --format prometheus");
  INFO(cli.err);
  REQUIRE(cli.code == 0);
  CHECK(has(cli.out, "# TYPE luad_processes_spawned_total counter\n"));
  shell_result check = promtool_check(cli.out);
  INFO(check.out);
  CHECK(check.code == 0);
  CHECK(check.out.empty());

  http_answer served = http_get(d.d->metrics_port(), "/metrics");
  REQUIRE(served.status == 200);
  CHECK(served.header("Content-Type") == "text/plain; version=0.0.4; charset=utf-8");
  check = promtool_check(served.body);
  INFO(check.out);
  CHECK(check.code == 0);
  CHECK(check.out.empty());
  // The same families either way (the values move: uptime, memory).
  auto names = [](const std::string& text) {
    std::string out;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);)
      if (line.rfind("# TYPE ", 0) == 0) out += line + "\n";
    return out;
  };
  CHECK(names(served.body) == names(cli.out));
}

TEST_CASE("metrics: luad stats --format takes text, json or prometheus; anything else is usage") {
  running_daemon d;
  cli_result r = luad_cli(d.socket, "stats --format yaml");
  CHECK(r.code == 2);
  CHECK(has(r.err, "--format"));
  CHECK(has(r.err, "yaml"));
  r = luad_cli(d.socket, "stats --format json");
  CHECK(r.code == 0);
  CHECK(parse(r.out).as_object().contains("store"));
  r = luad_cli(d.socket, "stats");
  CHECK(r.code == 0);
  CHECK(has(r.out, "store.commit_seconds: "));
  CHECK(has(r.out, "mailboxes.messages: 0\n"));
}

TEST_CASE("metrics: a daemon whose metrics address is taken does not start, and says why") {
  // A listener of our own on a free port.
  int holder = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(holder, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  REQUIRE(::listen(holder, 1) == 0);
  socklen_t len = sizeof a;
  ::getsockname(holder, reinterpret_cast<sockaddr*>(&a), &len);
  std::string where = "127.0.0.1:" + std::to_string(ntohs(a.sin_port));

  temp_dir dir("luad_metrics_taken");
  dir.write("luad.toml", "[server]\nsocket = \"luad.sock\"\n[metrics]\nlisten = \"" + where +
                             "\"\n[[profile]]\nname = \"default\"\npermissions = []\n");
  std::string message;
  {
    luad::server::daemon d(luad::server::load_config((dir / "luad.toml").string()));
    try {
      d.start();
    } catch (const std::runtime_error& e) {
      message = e.what();
    }
  }
  CHECK(message ==
        "metrics: cannot listen on " + where + " ([metrics] listen): Address already in use");
  CHECK_FALSE(fs::exists(dir / "luad.sock"));  // it stopped before the socket
  // The real binary: exit 1 and the same words (under `timeout`: a daemon
  // that started anyway must fail this, not hang it).
  shell_result serve = shell("timeout 20 '" + std::string(LUAD_BINARY) + "' serve --config '" +
                             (dir / "luad.toml").string() + "'");
  CHECK(serve.code == 1);
  CHECK(has(serve.out, "luad serve: metrics: cannot listen on " + where));
  ::close(holder);
}

TEST_CASE("metrics: a reload that changes [metrics] says a restart is needed; the listener stays") {
  running_daemon d(k_metrics);
  client c(d.socket);
  std::uint16_t port = d.d->metrics_port();
  d.write_config("[metrics]\nlisten = \"127.0.0.1:" + std::to_string(free_port()) + "\"\n");
  json::value r = c.call("reload");
  CHECK(get(r, "/result/restart_needed") == true);
  CHECK(http_get(port, "/metrics").status == 200);
  cli_result cli = luad_cli(d.socket, "reload");
  CHECK(has(cli.out, "[metrics]"));
  // Without a change, none is.
  d.write_config(k_metrics);
  CHECK(get(c.call("reload"), "/result/restart_needed") == false);
}
