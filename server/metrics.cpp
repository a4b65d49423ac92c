// The Prometheus exposition of the stats document (metrics.hpp).
//
// DESIGN. The stats document is the one source of truth: `k_families` maps
// each of its parts, by path, to a metric family. A number becomes one
// sample; an object of numbers becomes one sample per key, the key as a
// label (`always` lists label values written as 0 when absent, so that a
// series does not vanish); a {count, sum, buckets} object becomes a
// histogram; a string becomes a state set (1 for its value, 0 for the other
// `always`). unexposed() walks a document for leaves the table misses, and a
// test runs it on a live daemon's, so a counter added to stats and not here
// fails there rather than going unseen.
#include "server/metrics.hpp"

#include <charconv>
#include <cmath>
#include <initializer_list>

namespace luad::server {

namespace json = boost::json;

namespace {

enum class kind { counter, gauge, histogram, skipped };

struct family {
  std::string_view path;  // in the stats document, parts joined by '.'
  std::string_view name;  // the family's name (a counter's ends in _total)
  kind type;
  std::string_view help;
  std::string_view label = {};  // the key of an object of numbers, or a string's
  std::initializer_list<std::string_view> always = {};  // label values never left out
};

// clang-format off
const family k_families[] = {
  {"uptime", "luad_uptime_seconds", kind::gauge, "Seconds since the daemon started."},
  {"processes.alive", "luad_processes_alive", kind::gauge, "Live processes."},
  {"processes.by_state", "luad_processes", kind::gauge,
   "Live processes by state: runnable (queued to run), running, waiting (for a command's answer) "
   "or receiving (a message).", "state", {"runnable", "running", "waiting", "receiving"}},
  {"processes.spawned", "luad_processes_spawned_total", kind::counter, "Processes started."},
  {"processes.exited", "", kind::skipped, "the sum of luad_process_exits_total"},
  {"processes.exits", "luad_process_exits_total", kind::counter,
   "Processes ended, by exit reason.", "reason"},
  {"mailboxes.messages", "luad_mailbox_messages", kind::gauge,
   "Messages queued in the mailboxes of all live processes."},
  {"mailboxes.most_messages", "luad_mailbox_messages_max", kind::gauge,
   "The most messages queued in one process's mailbox."},
  {"mailboxes.bytes", "luad_mailbox_bytes", kind::gauge,
   "Bytes of the messages queued in all mailboxes."},
  {"scheduler.workers", "luad_scheduler_workers", kind::gauge, "Worker threads."},
  {"scheduler.yields", "luad_scheduler_yields_total", kind::counter,
   "Yields of processes: commands to dispatchers and waits for messages."},
  {"scheduler.preemptions", "luad_scheduler_preemptions_total", kind::counter,
   "Turns the watchdog ended at their time slice."},
  {"scheduler.hooks_armed", "luad_scheduler_hooks_armed_total", kind::counter,
   "One-shot hooks the watchdog armed on long turns."},
  {"scheduler.handoffs", "luad_scheduler_handoffs_total", kind::counter,
   "Held workers whose queue a spare thread took over."},
  {"scheduler.early_handoffs", "luad_scheduler_early_handoffs_total", kind::counter,
   "Handoffs made at the start of a turn of a process whose last long turn was held."},
  {"scheduler.spare_threads", "luad_scheduler_spare_threads_started_total", kind::counter,
   "Spare threads started."},
  {"scheduler.held", "luad_scheduler_held_threads", kind::gauge,
   "Threads now finishing a held turn."},
  {"scheduler.steals", "luad_scheduler_steals_total", kind::counter,
   "Processes a worker took from another worker's queue."},
  {"scheduler.dead_letters", "luad_dead_letters_total", kind::counter,
   "Messages sent to pids that were not alive."},
  {"scheduler.commands", "luad_commands_total", kind::counter,
   "Commands processes sent to dispatchers, by command.", "command"},
  {"timers.pending", "luad_timers_pending", kind::gauge, "Sleeps and timers pending."},
  {"fetch.in_flight", "luad_fetch_requests_in_flight", kind::gauge,
   "HTTP requests talking to servers now."},
  {"fetch.queued", "luad_fetch_requests_queued", kind::gauge,
   "HTTP requests waiting for a slot."},
  {"fetch.idle_connections", "luad_fetch_idle_connections", kind::gauge,
   "Idle keep-alive connections in the pool."},
  {"fetch.connections_opened", "luad_fetch_connections_opened_total", kind::counter,
   "TCP connections the HTTP client opened."},
  {"fetch.completed", "luad_fetch_completed_total", kind::counter,
   "HTTP requests admitted and finished, either way."},
  {"fetch.outcomes", "luad_fetch_requests_total", kind::counter,
   "HTTP requests ended, by outcome: the status class of the response (1xx..5xx), or timeout, "
   "refused, unavailable, limit, denied, invalid, canceled.", "outcome"},
  {"fetch.sent_bytes", "luad_fetch_sent_bytes_total", kind::counter,
   "HTTP bytes (heads and bodies, before TLS) written to servers."},
  {"fetch.received_bytes", "luad_fetch_received_bytes_total", kind::counter,
   "HTTP bytes (heads and bodies, before TLS) read from servers."},
  {"fetch.duration_seconds", "luad_fetch_duration_seconds", kind::histogram,
   "Time from an HTTP request's submission to its answer, queueing and redirects included."},
  {"store.commits", "luad_store_commits_total", kind::counter,
   "Batches the store's writer committed."},
  {"store.writes", "luad_store_writes_total", kind::counter,
   "Writes (store and journal) those batches carried."},
  {"store.failed_batches", "luad_store_failed_batches_total", kind::counter,
   "Batches rolled back (disk full, read-only file); their writes failed."},
  {"store.written_bytes", "luad_store_written_bytes_total", kind::counter,
   "Bytes of keys and values put by committed store writes."},
  {"store.bytes", "luad_store_bytes", kind::gauge,
   "Bytes of keys and values the store holds, as its quotas count them."},
  {"store.commit_seconds", "luad_store_commit_duration_seconds", kind::histogram,
   "Time of each committed batch, from BEGIN to the end of COMMIT (its fsync included)."},
  {"memory.resident", "luad_resident_memory_bytes", kind::gauge,
   "Resident memory of the daemon."},
  {"memory.lua", "luad_lua_memory_bytes", kind::gauge,
   "The Lua heaps of the live processes together."},
  {"memory.heap_mapped", "luad_heap_mapped_bytes", kind::gauge,
   "Address space mapped for process heaps (huge-page regions)."},
  {"memory.heap_free", "luad_heap_free_bytes", kind::gauge,
   "Free process-heap spans kept backed for reuse (above 64 MiB they go back to the kernel)."},
  {"memory.heap_returned", "luad_heap_returned_bytes_total", kind::counter,
   "Bytes of free process-heap spans given back to the kernel."},
  {"code.cache_hits", "luad_code_cache_hits_total", kind::counter,
   "Spawns served compiled code from the cache."},
  {"code.cache_misses", "luad_code_cache_misses_total", kind::counter,
   "Spawns that found no usable compiled code."},
  {"code.compiles", "luad_code_compiles_total", kind::counter, "Scripts compiled."},
  {"code.compile_errors", "luad_code_compile_errors_total", kind::counter,
   "Scripts that failed to compile."},
  {"code.evictions", "luad_code_cache_evictions_total", kind::counter,
   "Compiled chunks dropped from the cache."},
  {"code.entries", "luad_code_cache_entries", kind::gauge, "Compiled chunks in the cache."},
  {"code.bytes", "luad_code_cache_bytes", kind::gauge, "Bytes of bytecode in the cache."},
  {"code.file_changes", "luad_code_file_changes_total", kind::counter,
   "Changes to script and package files seen."},
  {"code.workflow_restarts", "luad_code_reload_restarts_total", kind::counter,
   "Workflows restarted on new code."},
  {"code.workflow_code_errors", "luad_code_reload_errors_total", kind::counter,
   "Workflows whose new code did not compile (they kept the old)."},
  {"code.workflow_rollbacks", "luad_code_reload_rollbacks_total", kind::counter,
   "Workflows sent back to their previous code after new code failed on trial."},
  {"code.watching", "luad_code_watch_mode", kind::gauge,
   "1 for how script files are followed: inotify, polling or off.", "mode",
   {"inotify", "polling", "off"}},
  {"workflows.restarts", "luad_workflow_restarts_total", kind::counter,
   "Restarts of a workflow's children by its current supervisor.", "workflow"},
  {"connections", "luad_connections", kind::gauge, "Client connections open on the socket."},
  // Only in a cluster (docs/cluster.md).
  {"cluster.node", "luad_cluster_node", kind::gauge, "This daemon's node id in its cluster."},
  {"cluster.runs", "luad_cluster_runs", kind::gauge, "Durable runs live on this node."},
  {"cluster.claimed", "luad_cluster_claimed_runs_total", kind::counter,
   "Runs this node claimed (no live node owned them) and started by replay."},
  {"cluster.lost", "luad_cluster_lost_runs_total", kind::counter,
   "Runs another node took while this node's lease had lapsed."},
  {"cluster.renew_failures", "luad_cluster_renew_failures_total", kind::counter,
   "Lease renewals that failed (the database out of reach, or the node taken over)."},
  {"cluster.lease_seconds_left", "luad_cluster_lease_seconds_left", kind::gauge,
   "Seconds this node's lease has left, as of its last renewal."},
  {"cluster.mail_sent", "luad_cluster_mail_sent_total", kind::counter,
   "Messages this node recorded for durable runs' names registered on other nodes."},
  {"cluster.mail_moved", "luad_cluster_mail_moved_total", kind::counter,
   "Messages from other nodes this node moved into its durable runs' inboxes."},
};
// clang-format on

const json::value* at_path(const json::object& doc, std::string_view path) {
  const json::object* o = &doc;
  for (;;) {
    std::size_t dot = path.find('.');
    const json::value* v = o->if_contains(path.substr(0, dot));
    if (!v || dot == std::string_view::npos) return v;
    if (!v->is_object()) return nullptr;
    o = &v->get_object();
    path.remove_prefix(dot + 1);
  }
}

void put_number(std::string& out, const json::value& v) {
  char buf[32];
  std::to_chars_result r{};
  if (v.is_int64()) {
    r = std::to_chars(buf, buf + sizeof buf, v.get_int64());
  } else if (v.is_uint64()) {
    r = std::to_chars(buf, buf + sizeof buf, v.get_uint64());
  } else {
    double d = v.is_double() ? v.get_double() : std::nan("");
    if (std::isnan(d)) {
      out += "NaN";
      return;
    }
    if (std::isinf(d)) {
      out += d > 0 ? "+Inf" : "-Inf";
      return;
    }
    r = std::to_chars(buf, buf + sizeof buf, d);
  }
  out.append(buf, r.ptr);
}

// A label value or help text, escaped as the text format asks: backslash and
// newline always, the double quote in label values.
void put_escaped(std::string& out, std::string_view text, bool quote) {
  for (char c : text) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '"' && quote) {
      out += "\\\"";
    } else {
      out += c;
    }
  }
}

void put_sample(std::string& out, std::string_view name, std::string_view suffix,
                std::string_view label, std::string_view label_value, const json::value& v) {
  out += name;
  out += suffix;
  if (!label.empty()) {
    out += '{';
    out += label;
    out += "=\"";
    put_escaped(out, label_value, true);
    out += "\"}";
  }
  out += ' ';
  put_number(out, v);
  out += '\n';
}

void put_histogram(std::string& out, const family& f, const json::object& h) {
  const json::value* buckets = h.if_contains("buckets");
  const json::value* sum = h.if_contains("sum");
  const json::value* count = h.if_contains("count");
  if (!buckets || !buckets->is_object() || !sum || !count) return;
  for (const auto& [le, n] : buckets->get_object()) put_sample(out, f.name, "_bucket", "le", le, n);
  put_sample(out, f.name, "_sum", {}, {}, *sum);
  put_sample(out, f.name, "_count", {}, {}, *count);
}

void put_family(std::string& out, const family& f, const json::value& v) {
  out += "# HELP ";
  out += f.name;
  out += ' ';
  put_escaped(out, f.help, false);
  out += "\n# TYPE ";
  out += f.name;
  out += f.type == kind::counter ? " counter\n"
         : f.type == kind::gauge ? " gauge\n"
                                 : " histogram\n";
  if (f.type == kind::histogram) {
    if (v.is_object()) put_histogram(out, f, v.get_object());
  } else if (v.is_number()) {
    put_sample(out, f.name, {}, {}, {}, v);
  } else if (v.is_string()) {  // a state: 1 for the value it has
    std::string_view now = v.get_string();
    bool listed = false;
    for (std::string_view s : f.always) {
      listed |= s == now;
      put_sample(out, f.name, {}, f.label, s, json::value(s == now ? 1 : 0));
    }
    if (!listed) put_sample(out, f.name, {}, f.label, now, json::value(1));
  } else if (v.is_object()) {
    const json::object& o = v.get_object();
    for (std::string_view s : f.always)
      if (!o.contains(s)) put_sample(out, f.name, {}, f.label, s, json::value(0));
    for (const auto& [key, n] : o)
      if (n.is_number()) put_sample(out, f.name, {}, f.label, key, n);
  }
}

void find_unexposed(const json::object& o, const std::string& prefix,
                    std::vector<std::string>& out) {
  for (const auto& [key, v] : o) {
    std::string path = prefix + std::string(key);
    bool known = false;
    for (const family& f : k_families) known |= f.path == path;
    if (known) continue;
    if (v.is_object()) {
      find_unexposed(v.get_object(), path + ".", out);
    } else {
      out.push_back(path);
    }
  }
}

}  // namespace

std::string prometheus_text(const json::object& stats) {
  std::string out;
  out.reserve(16384);
  for (const family& f : k_families) {
    if (f.type == kind::skipped) continue;
    if (const json::value* v = at_path(stats, f.path)) put_family(out, f, *v);
  }
  return out;
}

std::vector<std::string> unexposed(const json::object& stats) {
  std::vector<std::string> out;
  find_unexposed(stats, "", out);
  return out;
}

}  // namespace luad::server
