// The stats document (stats.hpp).
#include "server/stats.hpp"

#include <unistd.h>

#include <cstdint>
#include <fstream>

#include "runtime/process.hpp"

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

json::object processes(runtime::scheduler& sched, const runtime::scheduler_stats& s,
                       std::uint64_t& lua_bytes) {
  json::object by_state;
  sched.visit([&](runtime::process& proc) {
    json::value& n = by_state[proc.status()];
    n = (n.is_int64() ? n.get_int64() : 0) + 1;
    lua_bytes += proc.memory_used();
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

}  // namespace

json::object stats_document(engine& eng, daemon_counters counters) {
  runtime::scheduler& sched = eng.scheduler();
  auto s = sched.stats();
  std::uint64_t lua_bytes = 0;
  json::object procs = processes(sched, s, lua_bytes);
  auto f = eng.fetch().snapshot();
  return json::object{{"uptime", std::chrono::duration<double>(std::chrono::steady_clock::now() -
                                                               counters.started_at)
                                     .count()},
                      {"processes", std::move(procs)},
                      {"scheduler", scheduling(sched, s)},
                      {"timers", json::object{{"pending", eng.clock().pending()}}},
                      {"fetch", json::object{{"in_flight", f.in_flight},
                                             {"queued", f.queued},
                                             {"idle_connections", f.idle_connections},
                                             {"connections_opened", f.connections_opened},
                                             {"completed", f.completed}}},
                      {"store", json::object{{"commits", eng.storage().commits()},
                                             {"writes", eng.storage().committed_writes()}}},
                      {"memory", json::object{{"resident", resident_bytes()}, {"lua", lua_bytes}}},
                      {"code", code(sched, counters.code)},
                      {"connections", counters.connections}};
}

}  // namespace luad::server
