// The stats document (stats.hpp).
#include "server/stats.hpp"

#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <fstream>

#include "runtime/histogram.hpp"
#include "runtime/process.hpp"
#include "runtime/span_pool.hpp"

namespace luad::server {

namespace json = boost::json;

namespace {

// Resident memory of the daemon, from /proc (0 where it cannot be read).
std::uint64_t resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  std::uint64_t pages = 0, resident = 0;
  if (!(statm >> pages >> resident)) return 0;
  return resident * static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
}

// The daemon's RSS, the live heaps, and the process-heap spans: mapped, and
// free in the depot (kept for the next burst, or given back).
json::object memory(std::uint64_t lua_bytes) {
  const runtime::span_pool::stats spans = runtime::span_pool::read();
  return {{"resident", resident_bytes()},
          {"lua", lua_bytes},
          {"heap_mapped", spans.mapped},
          {"heap_free", spans.depot_warm},
          {"heap_returned", spans.trimmed}};
}

// What one pass over the process table adds up besides the states.
struct table_sums {
  std::uint64_t lua_bytes = 0;
  std::uint64_t queued = 0, most_queued = 0, queued_bytes = 0;  // mailboxes
};

json::object processes(runtime::scheduler& sched, const runtime::scheduler_stats& s,
                       table_sums& sums) {
  json::object by_state;
  sched.visit([&](runtime::process& proc) {
    json::value& n = by_state[proc.status()];
    n = (n.is_int64() ? n.get_int64() : 0) + 1;
    sums.lua_bytes += proc.memory_used();
    std::uint64_t queued = proc.mailbox().length();
    sums.queued += queued;
    sums.most_queued = std::max(sums.most_queued, queued);
    sums.queued_bytes += proc.mailbox().bytes();
  });
  json::object exits_by;
  for (std::size_t i = 0; i < s.exits.size(); ++i)
    exits_by[runtime::reason_name(static_cast<runtime::exit_reason>(i))] = s.exits[i];
  return json::object{{"alive", s.alive},
                      {"by_state", std::move(by_state)},
                      {"spawned", s.spawned},
                      {"exited", s.exited},
                      {"exits", std::move(exits_by)}};
}

json::object scheduling(runtime::scheduler& sched, const runtime::scheduler_stats& s) {
  json::object commands;
  for (std::size_t i = 1; i < s.commands.size(); ++i)
    commands[runtime::command_name(static_cast<runtime::command_id>(i))] = s.commands[i];
  return json::object{{"workers", sched.worker_count()},
                      {"yields", s.yields},
                      {"preemptions", s.preemptions},
                      {"hooks_armed", s.hooks_armed},
                      {"handoffs", s.handoffs},
                      {"early_handoffs", s.early_handoffs},
                      {"spare_threads", s.spare_threads},
                      {"held", s.held},
                      {"steals", s.steals},
                      {"dead_letters", s.dead_letters},
                      {"commands", std::move(commands)}};
}

json::object code(runtime::scheduler& sched, const json::object& daemon_side) {
  auto cs = sched.code().stats();
  json::object o{{"cache_hits", cs.hits},     {"cache_misses", cs.misses},
                 {"compiles", cs.compiles},   {"compile_errors", cs.compile_errors},
                 {"evictions", cs.evictions}, {"entries", cs.entries},
                 {"bytes", cs.bytes}};
  for (const auto& [k, v] : daemon_side) o[k] = v;
  return o;
}

// {"count", "sum", "buckets": {"0.0001": n, ..., "+Inf": count}}, cumulative
// as Prometheus has them (server/metrics.cpp reads this shape).
json::object histogram_json(const runtime::histogram& h) {
  runtime::histogram::snapshot snap = h.read();
  json::object buckets;
  for (std::size_t i = 0; i < runtime::histogram::bounds.size(); ++i) {
    char le[32];
    auto [end, ec] =
        std::to_chars(le, le + sizeof le, runtime::histogram::bounds[i], std::chars_format::fixed);
    buckets[std::string_view(le, static_cast<std::size_t>(end - le))] = snap.cumulative[i];
  }
  buckets["+Inf"] = snap.count;
  return json::object{{"count", snap.count}, {"sum", snap.sum}, {"buckets", std::move(buckets)}};
}

json::object fetching(const dispatcher::fetch& fetch) {
  auto f = fetch.snapshot();
  json::object outcomes;
  for (std::size_t i = 0; i < f.outcomes.size(); ++i)
    outcomes[dispatcher::fetch_outcome_name(static_cast<dispatcher::fetch_outcome>(i))] =
        f.outcomes[i];
  return json::object{{"in_flight", f.in_flight},
                      {"queued", f.queued},
                      {"idle_connections", f.idle_connections},
                      {"connections_opened", f.connections_opened},
                      {"completed", f.completed},
                      {"outcomes", std::move(outcomes)},
                      {"sent_bytes", f.sent_bytes},
                      {"received_bytes", f.received_bytes},
                      {"duration_seconds", histogram_json(fetch.durations())}};
}

json::object storing(const dispatcher::storage& store) {
  auto c = store.snapshot();
  return json::object{{"commits", c.commits},
                      {"writes", c.writes},
                      {"failed_batches", c.failed_batches},
                      {"written_bytes", c.written_bytes},
                      {"bytes", c.held_bytes},
                      {"commit_seconds", histogram_json(store.commit_durations())}};
}

}  // namespace

json::object stats_document(engine& eng, daemon_counters counters) {
  runtime::scheduler& sched = eng.scheduler();
  auto s = sched.stats();
  table_sums sums;
  json::object procs = processes(sched, s, sums);
  json::object doc{{"uptime", std::chrono::duration<double>(std::chrono::steady_clock::now() -
                                                            counters.started_at)
                                  .count()},
                   {"processes", std::move(procs)},
                   {"mailboxes", json::object{{"messages", sums.queued},
                                              {"most_messages", sums.most_queued},
                                              {"bytes", sums.queued_bytes}}},
                   {"scheduler", scheduling(sched, s)},
                   {"timers", json::object{{"pending", eng.clock().pending()}}},
                   {"fetch", fetching(eng.fetch())},
                   {"store", storing(eng.storage())},
                   {"memory", memory(sums.lua_bytes)},
                   {"code", code(sched, counters.code)},
                   {"workflows", json::object{{"restarts", std::move(counters.workflow_restarts)}}},
                   {"connections", counters.connections}};
  if (!counters.cluster.empty()) doc["cluster"] = std::move(counters.cluster);
  return doc;
}

}  // namespace luad::server
