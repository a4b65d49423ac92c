// The daemon: the Unix socket, peer checks, the JSON-RPC methods, exit
// tracking for submitted processes, and the shutdown sequence.
//
// DESIGN. Everything that touches a socket runs on one Asio thread (`io`).
// Workers report exits through on_exit callbacks, which only record the exit
// under `events_mu` and post the waiting replies to `io`. A connection reads one
// line at a time (bounded by limits.max_request_size) and stops reading while
// more than `k_max_pending_bytes` of replies wait to be written or
// `k_max_in_flight` of its requests wait for an exit, so a client that never
// reads cannot make the daemon buffer without bound. Log notifications for
// such a client are dropped (and counted) rather than queued.
#include "server/daemon.hpp"

#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <boost/asio.hpp>
#include <boost/json.hpp>

#include <atomic>
#include <ctime>
#include <deque>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <mutex>
#include <optional>
#include <set>
#include <thread>
#include <unordered_map>

#include "modules/supervisor.hpp"
#include "runtime/code.hpp"
#include "server/file_watch.hpp"
#include "runtime/logging.hpp"
#include "runtime/message_codec.hpp"
#include "runtime/process.hpp"
#include "server/engine.hpp"

namespace luad::server {

namespace {

namespace asio = boost::asio;
namespace json = boost::json;
namespace fs = std::filesystem;
using local = asio::local::stream_protocol;

constexpr std::size_t k_max_pending_bytes = 4 << 20;
// Requests one connection may have waiting for an exit before the daemon
// stops reading its next ones: with the byte bound above, what bounds the
// memory a client that never reads can make the daemon hold.
constexpr std::size_t k_max_in_flight = 64;
constexpr std::size_t k_exits_kept = 10000;
constexpr std::size_t k_log_lines_kept = 10000;
constexpr std::size_t k_log_message_bytes = 16 << 10;  // longer lines are cut for followers

// JSON-RPC error codes (the standard ones, then ours).
constexpr int k_parse_error = -32700, k_invalid_request = -32600, k_method_not_found = -32601,
              k_invalid_params = -32602, k_failed = -32000, k_denied = -32001, k_not_found = -32004;

json::value to_json(const runtime::value& v) {
  struct visitor {
    json::value operator()(std::monostate) const { return nullptr; }
    json::value operator()(bool b) const { return b; }
    json::value operator()(std::int64_t i) const { return i; }
    json::value operator()(double d) const { return d; }
    json::value operator()(const std::string& s) const { return json::string(s); }
    json::value operator()(const runtime::value::array& a) const {
      json::array out;
      for (const auto& e : a) out.push_back(to_json(e));
      return out;
    }
    json::value operator()(const runtime::value::map& m) const {
      json::object out;
      for (const auto& [k, e] : m) out[k] = to_json(e);
      return out;
    }
  };
  return std::visit(visitor{}, v.data);
}

runtime::value from_json(const json::value& j) {
  switch (j.kind()) {
    case json::kind::null: return {};
    case json::kind::bool_: return j.get_bool();
    case json::kind::int64: return j.get_int64();
    case json::kind::uint64: return static_cast<double>(j.get_uint64());
    case json::kind::double_: return j.get_double();
    case json::kind::string: return std::string(j.get_string());
    case json::kind::array: {
      runtime::value::array a;
      for (const auto& e : j.get_array()) a.push_back(from_json(e));
      return a;
    }
    case json::kind::object: {
      runtime::value::map m;
      for (const auto& [k, e] : j.get_object()) m.emplace_back(std::string(k), from_json(e));
      return m;
    }
  }
  return {};
}

json::object exit_json(const runtime::exit_info& e) {
  json::object o;
  o["pid"] = e.id.to_string();
  o["reason"] = std::string(runtime::reason_name(e.reason));
  if (e.reason == runtime::exit_reason::normal) {
    json::array r;
    for (const auto& v : e.results) r.push_back(to_json(v));
    o["results"] = std::move(r);
  } else {
    o["kind"] = std::string(runtime::kind_name(e.err.kind));
    o["message"] = e.err.message;
    if (!e.err.traceback.empty()) o["traceback"] = e.err.traceback;
  }
  return o;
}

// A method's failure, turned into a JSON-RPC error object.
struct rpc_error {
  int code;
  std::string message;
};

}  // namespace

struct daemon::impl {
  config cfg;
  std::unique_ptr<engine> eng;
  asio::io_context io;
  local::acceptor acceptor{io};
  asio::signal_set signals{io, SIGTERM, SIGINT};
  asio::signal_set hangup{io, SIGHUP};  // reload
  std::thread io_thread;
  bool stopping = false;  // io thread only

  struct connection;
  std::vector<std::weak_ptr<connection>> connections;  // io thread only

  // Guards the exits, their waiters, the log backlog and the subscriptions
  // together, so a client that subscribes misses no line and no exit.
  std::mutex events_mu;
  // Exits of processes submitted through the socket, and who waits for them.
  struct waiter {
    std::weak_ptr<connection> conn;
    json::value id;
  };
  std::unordered_map<std::uint64_t, runtime::exit_info> exits;
  std::deque<std::uint64_t> exit_order;
  std::unordered_map<std::uint64_t, std::vector<waiter>> waiters;
  // The last lines processes logged (at the daemon's level or above), and the
  // clients following a process's log lines and exit.
  struct log_line {
    std::uint64_t serial;
    std::string pid, workflow, time, message, fields;
    runtime::log_level level;
  };
  std::deque<log_line> log_backlog;
  runtime::log_level backlog_level = runtime::log_level::info;
  struct subscriber {
    std::weak_ptr<connection> conn;
    bool logs;
    runtime::log_level level;
  };
  std::unordered_map<std::uint64_t, std::vector<subscriber>> subscribers;
  std::atomic<std::size_t> subscriptions{0};  // read without the lock by exit hooks
  struct log_tap final : runtime::log_tap {
    impl* d = nullptr;
    void on_log(const runtime::log_record& rec) noexcept override;
  } tap;
  std::chrono::steady_clock::time_point started_at = std::chrono::steady_clock::now();

  // Hot code loading (io thread only). The watcher follows the script roots
  // and the workflows' folders; `running_code` is the compiled code each
  // running workflow with reload = "restart" was started on, by path (its
  // script, then the packages it was seen to require), so a change of content
  // — not of mtime — restarts it. `code_errors`: workflows whose new code did
  // not compile (they keep running the old), or whose new code failed on
  // trial and was rolled back.
  std::unique_ptr<file_watcher> watcher;
  std::unordered_map<std::string, runtime::code_pin> running_code;
  std::unordered_map<std::string, std::string> code_errors;
  std::set<std::string> restarting;
  std::uint64_t file_changes = 0, code_restarts = 0, code_failures = 0, code_rollbacks = 0;
  // Rollback: a workflow restarted on new code is on trial for its
  // `reload_trial` seconds. If one of its processes started on the new code
  // (serial >= first_serial) fails in that time, the workflow goes back to
  // the code it ran before, pinned (rolled_back), until its files change again.
  struct code_trial {
    std::shared_ptr<const runtime::code_pin> previous;
    std::uint64_t first_serial = 0;
    std::chrono::steady_clock::time_point until;
  };
  std::unordered_map<std::string, code_trial> trials;
  std::atomic<std::size_t> trials_open{0};  // read by workers to skip the post
  std::set<std::string> rolled_back;

  // Config workflows: name -> the pid of the supervisor running it (empty
  // when not started). Written at start, read by the io thread.
  std::mutex workflows_mu;
  std::unordered_map<std::string, runtime::pid> workflow_pids;

  explicit impl(config c) : cfg(std::move(c)) { tap.d = this; }
  /// Starts `w` under a supervisor of its own, on `pin`'s code where it has
  /// some (a rollback) or on the files as they are.
  runtime::pid start_workflow(const workflow_config& w, std::string& why,
                              std::shared_ptr<const runtime::code_pin> pin = nullptr);
  /// Kills the workflow's supervisor (its children end with it) and waits up
  /// to a second for it to be gone. Returns false if it was not running.
  bool stop_workflow(const std::string& name);
  /// Rereads the config file: workflows added, removed or changed; profiles,
  /// script roots and per-process limit defaults. Throws config_error.
  json::object reload();

  void watch_hangup();
  void watch_code();
  /// Files changed on disk (or `luad reload`): forget their compiled code,
  /// tell processes that asked (UPGRADE), restart reload = "restart"
  /// workflows whose code changed, if it compiles.
  json::object code_changed(const std::vector<std::string>& paths, bool everything);
  void restart_on_new_code(const workflow_config& w);
  void finish_code_restart(const std::string& name,
                           std::shared_ptr<const runtime::code_pin> previous);
  void remember_code(const workflow_config& w, const runtime::code_pin* pin);
  /// A process of workflow `name` failed: roll back if it ran new code on trial.
  void on_workflow_failure(const std::string& name, std::uint64_t serial, const std::string& why);
  void forget_trial(const std::string& name);
  const workflow_config* workflow_named(const std::string& name) const;
  void on_exit(const runtime::exit_info& e);
  void on_any_exit(const runtime::exit_info& e, const runtime::process_context& ctx);
  void record_log(const runtime::log_record& rec);
  json::object stats_json();
  static json::object log_json(const log_line& line);
  void accept();
  void begin_stop();
};

struct daemon::impl::connection : std::enable_shared_from_this<connection> {
  impl& d;
  local::socket sock;
  std::string in;
  std::deque<std::string> out;
  std::size_t pending_bytes = 0;
  std::uint64_t dropped = 0;                // log notifications not sent (see notify)
  std::size_t in_flight = 0;                // requests answered later (spawn with wait, wait)
  std::shared_ptr<connection> paused_self;  // set while reading is paused (see read)
  bool reading = false, writing = false, closed = false;
  uid_t uid = 0;
  gid_t gid = 0;

  connection(impl& owner, local::socket s) : d(owner), sock(std::move(s)) {}

  void start() {
    ucred cred{};
    socklen_t len = sizeof cred;
    if (getsockopt(sock.native_handle(), SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
      close();
      return;
    }
    uid = cred.uid;
    gid = cred.gid;
    const auto& s = d.cfg.server;
    bool allowed = uid == geteuid() || uid == 0 ||
                   std::find(s.allow_uids.begin(), s.allow_uids.end(), uid) != s.allow_uids.end() ||
                   std::find(s.allow_gids.begin(), s.allow_gids.end(), gid) != s.allow_gids.end();
    if (!allowed) {
      runtime::logger().warn("refused a client with uid {} gid {}", uid, gid);
      send_error(nullptr, k_denied, "uid " + std::to_string(uid) + " may not use this daemon");
      closed = true;  // close once the line is written
      return;
    }
    read();
  }

  void read() {
    if (reading || closed) return;
    if (pending_bytes > k_max_pending_bytes || in_flight >= k_max_in_flight) {
      // Paused: no read and maybe no write holds the connection now, and
      // waiters only hold weak references. Keep it until reading resumes.
      paused_self = shared_from_this();
      return;
    }
    auto keep = std::move(paused_self);
    reading = true;
    auto self = shared_from_this();
    asio::async_read_until(
        sock, asio::dynamic_buffer(in, d.cfg.limits.max_request_bytes + 1), '\n',
        [self](boost::system::error_code ec, std::size_t n) {
          self->reading = false;
          if (ec == asio::error::not_found) {  // the line passed the size limit
            self->send_error(nullptr, k_invalid_request,
                             "request line longer than " +
                                 std::to_string(self->d.cfg.limits.max_request_bytes) + " bytes");
            self->closed = true;
            return;
          }
          if (ec) {
            if (ec != asio::error::eof && ec != asio::error::operation_aborted)
              runtime::logger().debug("connection closed while reading: {}", ec.message());
            self->close();
            return;
          }
          std::string line = self->in.substr(0, n - 1);
          self->in.erase(0, n);
          self->handle(line);
          self->read();
        });
  }

  void send(const json::value& reply) {
    std::string text = json::serialize(reply);
    text += '\n';
    pending_bytes += text.size();
    out.push_back(std::move(text));
    write();
  }

  void send_error(const json::value* id, int code, const std::string& message) {
    json::object e{{"code", code}, {"message", message}};
    send(json::object{{"jsonrpc", "2.0"}, {"id", id ? *id : json::value(nullptr)}, {"error", e}});
  }

  void send_result(const json::value& id, json::value result) {
    send(json::object{{"jsonrpc", "2.0"}, {"id", id}, {"result", std::move(result)}});
  }

  // The answer to a request that waited (for an exit).
  void finish_deferred(const json::value& id, const json::value& result) {
    --in_flight;
    send_result(id, result);
    read();  // may have been paused at k_max_in_flight
  }

  // A notification (no id): a log line or an exit a client subscribed to.
  // Log lines for a client that does not read are dropped, not buffered
  // without bound; the next line that fits is preceded by a count of them.
  void notify(const char* method, const json::value& params, bool droppable) {
    if (closed) return;
    if (droppable && pending_bytes > k_max_pending_bytes) {
      ++dropped;
      return;
    }
    if (dropped > 0) {
      send(json::object{
          {"jsonrpc", "2.0"}, {"method", "dropped"}, {"params", {{"lines", dropped}}}});
      dropped = 0;
    }
    send(json::object{{"jsonrpc", "2.0"}, {"method", method}, {"params", params}});
  }

  void write() {
    if (writing || out.empty() || !sock.is_open()) return;
    writing = true;
    auto self = shared_from_this();
    asio::async_write(
        sock, asio::buffer(out.front()), [self](boost::system::error_code ec, std::size_t) {
          self->writing = false;
          self->pending_bytes -= self->out.front().size();
          self->out.pop_front();
          if (ec) {
            runtime::logger().debug("connection closed while writing: {}", ec.message());
            self->close();
            return;
          }
          if (self->out.empty() && self->closed) {
            self->close();
            return;
          }
          self->write();
          self->read();  // resumes reading once replies drained
        });
  }

  void close() {
    auto keep = std::move(paused_self);  // (released last: it may be the last owner)
    closed = true;
    boost::system::error_code ignored;
    sock.close(ignored);
  }

  void handle(const std::string& line);
  json::value call(const std::string& method, const json::object& params, const json::value& id,
                   bool& deferred);
};

void daemon::impl::connection::handle(const std::string& line) {
  if (line.find_first_not_of(" \t\r") == std::string::npos) return;  // blank lines are fine
  boost::system::error_code ec;
  json::value req = json::parse(line, ec);
  if (ec) {
    send_error(nullptr, k_parse_error, "not JSON: " + ec.message());
    return;
  }
  if (!req.is_object()) {
    send_error(nullptr, k_invalid_request, "a request is a JSON object");
    return;
  }
  const json::object& o = req.get_object();
  json::value id = o.contains("id") ? o.at("id") : json::value(nullptr);
  const json::value* method = o.if_contains("method");
  if (!method || !method->is_string()) {
    send_error(&id, k_invalid_request, "\"method\" (a string) is required");
    return;
  }
  static const json::object no_params;
  const json::value* params = o.if_contains("params");
  if (params && !params->is_object()) {
    send_error(&id, k_invalid_params, "\"params\" must be an object");
    return;
  }
  try {
    bool deferred = false;
    json::value result = call(std::string(method->get_string()),
                              params ? params->get_object() : no_params, id, deferred);
    if (deferred) {
      ++in_flight;
    } else {
      send_result(id, std::move(result));
    }
  } catch (const rpc_error& e) {
    send_error(&id, e.code, e.message);
  } catch (const std::exception& e) {
    send_error(&id, k_failed, e.what());
  }
}

namespace {

std::string text_param(const json::object& p, const char* key, bool required) {
  const json::value* v = p.if_contains(key);
  if (!v || v->is_null()) {
    if (required) throw rpc_error{k_invalid_params, std::string("\"") + key + "\" is required"};
    return {};
  }
  if (!v->is_string())
    throw rpc_error{k_invalid_params, std::string("\"") + key + "\" must be a string"};
  return std::string(v->get_string());
}

bool bool_param(const json::object& p, const char* key, bool fallback) {
  const json::value* v = p.if_contains(key);
  if (!v || v->is_null()) return fallback;
  if (!v->is_bool())
    throw rpc_error{k_invalid_params, std::string("\"") + key + "\" must be true or false"};
  return v->get_bool();
}

// A non-negative integer field of `limits`, or `fallback`; never above `cap`
// (a client may tighten the configured defaults, not loosen them).
template <class T>
T limit_param(const json::object& limits, const char* key, T fallback, T cap) {
  const json::value* v = limits.if_contains(key);
  if (!v || v->is_null()) return fallback;
  if (!v->is_int64() || v->get_int64() < 0)
    throw rpc_error{k_invalid_params,
                    std::string("\"limits.") + key + "\" must be a non-negative integer"};
  auto n = static_cast<std::uint64_t>(v->get_int64());
  if (cap != 0 && (n == 0 || n > cap))
    throw rpc_error{k_denied, std::string("\"limits.") + key + "\" may not exceed " +
                                  std::to_string(cap) + " (the daemon's default)"};
  return static_cast<T>(n);
}

// Resident memory of the daemon, from /proc (0 where it cannot be read).
std::uint64_t resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  std::uint64_t pages = 0, resident = 0;
  if (!(statm >> pages >> resident)) return 0;
  return resident * static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
}

runtime::pid pid_param(const json::object& p) {
  auto id = runtime::pid::parse(text_param(p, "pid", true));
  if (!id || !*id) throw rpc_error{k_invalid_params, "\"pid\" must look like \"0.42\""};
  return *id;
}

}  // namespace

json::value daemon::impl::connection::call(const std::string& method, const json::object& p,
                                           const json::value& id, bool& deferred) {
  runtime::scheduler& sched = d.eng->scheduler();
  if (method == "ping") return "pong";
  if (method == "version") return json::object{{"version", luad_version}};
  if (method == "stats") return d.stats_json();
  if (method == "spawn") {
    std::string source = text_param(p, "source", false);
    std::string script = text_param(p, "script", false);
    if (source.empty() == script.empty())
      throw rpc_error{k_invalid_params, "give exactly one of \"script\" and \"source\""};
    runtime::spawn_options so;
    so.ctx.limits = d.cfg.limits.process;
    so.ctx.owner = "uid:" + std::to_string(uid);
    if (const json::value* lv = p.if_contains("limits")) {
      if (!lv->is_object()) throw rpc_error{k_invalid_params, "\"limits\" must be an object"};
      const json::object& l = lv->get_object();
      for (const auto& [k, v] : l)
        if (k != "memory" && k != "instructions" && k != "mailbox" && k != "message_bytes")
          throw rpc_error{k_invalid_params, "unknown limit '" + std::string(k) +
                                                "' (memory, instructions, mailbox, message_bytes)"};
      runtime::limits& lim = so.ctx.limits;
      lim.memory = limit_param(l, "memory", lim.memory, lim.memory);
      lim.instructions = limit_param(l, "instructions", lim.instructions, lim.instructions);
      lim.mailbox = limit_param(l, "mailbox", lim.mailbox, lim.mailbox);
      lim.message_bytes = limit_param(l, "message_bytes", lim.message_bytes, lim.message_bytes);
    }
    if (const json::value* args = p.if_contains("args")) {
      if (!args->is_array()) throw rpc_error{k_invalid_params, "\"args\" must be an array"};
      for (const auto& a : args->get_array()) so.args.push_back(from_json(a));
    }
    std::string profile = text_param(p, "profile", false);
    if (profile.empty()) profile = "default";
    bool found = false;
    for (const auto& pr : d.cfg.profiles) {
      if (pr.name != profile) continue;
      bool may = (pr.uids.empty() && pr.gids.empty()) ||
                 std::find(pr.uids.begin(), pr.uids.end(), uid) != pr.uids.end() ||
                 std::find(pr.gids.begin(), pr.gids.end(), gid) != pr.gids.end();
      if (!may)
        throw rpc_error{k_denied,
                        "uid " + std::to_string(uid) + " may not use profile '" + profile + "'"};
      so.ctx.permissions = pr.permissions;
      found = true;
    }
    if (!found && profile != "default")
      throw rpc_error{k_not_found, "no profile named '" + profile + "'"};
    runtime::chunk_ptr code;
    if (!source.empty()) {
      std::string name = text_param(p, "name", false);
      code = runtime::compile(source, name.empty() ? "submitted" : name);
    } else {
      // Only scripts under the configured roots (default: the config's folder).
      std::vector<std::string> roots = d.cfg.script_roots;
      if (roots.empty()) roots.push_back(fs::path(d.cfg.path).parent_path().string());
      std::string found_path;
      for (const auto& root : roots) {
        std::string canon_root = fs::weakly_canonical(root).string();
        std::string candidate = fs::weakly_canonical(fs::path(root) / script).string();
        if (runtime::path_inside(canon_root, candidate) && fs::exists(candidate)) {
          found_path = candidate;
          so.ctx.script_root = canon_root;
          break;
        }
      }
      if (found_path.empty())
        throw rpc_error{k_not_found, "no script '" + script + "' under the script roots"};
      code = sched.code().get(found_path);
    }
    impl* owner = &d;
    so.on_exit = [owner](const runtime::exit_info& e) { owner->on_exit(e); };
    runtime::error why;
    runtime::pid pid = sched.spawn(code, std::move(so), &why);
    if (!pid) throw rpc_error{k_failed, why.message};
    const json::value* wait = p.if_contains("wait");
    if (wait && wait->is_bool() && wait->get_bool()) {
      std::lock_guard lock(d.events_mu);
      auto it = d.exits.find(pid.serial);
      if (it != d.exits.end()) return exit_json(it->second);
      d.waiters[pid.serial].push_back({weak_from_this(), id});
      deferred = true;
      return nullptr;
    }
    return json::object{{"pid", pid.to_string()}};
  }
  if (method == "wait") {
    runtime::pid pid = pid_param(p);
    std::lock_guard lock(d.events_mu);
    auto it = d.exits.find(pid.serial);
    if (it != d.exits.end()) return exit_json(it->second);
    if (runtime::process* proc = sched.find(pid)) {
      proc->release_ref();
      d.waiters[pid.serial].push_back({weak_from_this(), id});
      deferred = true;
      return nullptr;
    }
    throw rpc_error{k_not_found, "no process " + pid.to_string() + " (or its exit is forgotten)"};
  }
  if (method == "info") {
    runtime::pid pid = pid_param(p);
    runtime::process* proc = sched.find(pid);
    if (!proc) throw rpc_error{k_not_found, "no process " + pid.to_string()};
    json::object o{{"pid", pid.to_string()},
                   {"status", proc->status()},
                   {"script", proc->script_name()},
                   {"memory", proc->memory_used()},
                   {"instructions", proc->instructions()}};
    std::string_view on = proc->waiting_on();
    if (!on.empty()) o["waiting_on"] = std::string(on);
    proc->release_ref();
    return o;
  }
  if (method == "list") {
    std::string status = text_param(p, "status", false);
    std::string workflow = text_param(p, "workflow", false);
    std::string owner = workflow.empty() ? std::string() : "workflow:" + workflow;
    json::array listed;
    sched.visit([&](runtime::process& proc) {
      const char* st = proc.status();
      if (!status.empty() && status != st) return;
      if (!owner.empty() && proc.context().owner != owner) return;
      json::object o{{"pid", proc.id().to_string()},
                     {"status", st},
                     {"script", proc.script_name()},
                     {"memory", proc.memory_used()}};
      if (!proc.context().owner.empty()) o["owner"] = proc.context().owner;
      std::string_view on = proc.waiting_on();
      if (!on.empty()) o["waiting_on"] = std::string(on);
      listed.push_back(std::move(o));
    });
    return listed;
  }
  if (method == "workflows") {
    // With "action" start | stop | restart and "name", acts on one workflow
    // first; then (always) lists them all.
    std::string action = text_param(p, "action", false);
    if (!action.empty()) {
      std::string name = text_param(p, "name", true);
      const workflow_config* w = nullptr;
      for (const auto& c : d.cfg.workflows)
        if (c.name == name) w = &c;
      if (!w) throw rpc_error{k_not_found, "no workflow named '" + name + "'"};
      if (action != "start" && action != "stop" && action != "restart")
        throw rpc_error{k_invalid_params, "\"action\" is start, stop or restart"};
      runtime::pid old;
      {
        std::lock_guard lock(d.workflows_mu);
        old = d.workflow_pids[name];
      }
      bool running = false;
      if (runtime::process* sup = old ? sched.find(old) : nullptr) {
        running = true;
        sup->release_ref();
      }
      if (action == "start" && running)
        throw rpc_error{k_failed, "workflow '" + name + "' is already running"};
      if (action == "stop" && !running)
        throw rpc_error{k_failed, "workflow '" + name + "' is not running"};
      if (action != "start" && running) d.stop_workflow(name);
      if (action != "stop") {
        std::string why;
        runtime::pid pid = d.start_workflow(*w, why);
        if (!pid) throw rpc_error{k_failed, "workflow '" + name + "' could not start: " + why};
        std::lock_guard lock(d.workflows_mu);
        d.workflow_pids[name] = pid;
      }
    }
    json::array listed;
    std::lock_guard lock(d.workflows_mu);
    for (const auto& w : d.cfg.workflows) {
      runtime::pid pid = d.workflow_pids[w.name];
      runtime::process* sup = pid ? sched.find(pid) : nullptr;
      if (sup) sup->release_ref();
      json::object o{{"name", w.name},
                     {"script", w.script},
                     {"start", w.start},
                     {"restart", w.restart},
                     {"state", sup   ? "running"
                               : pid ? "stopped"
                                     : "not started"}};
      if (sup) o["supervisor"] = pid.to_string();
      if (w.reload != "none") o["reload"] = w.reload;
      if (auto e = d.code_errors.find(w.name); e != d.code_errors.end())
        o["code_error"] = e->second;
      if (d.rolled_back.count(w.name)) o["code"] = "previous";
      listed.push_back(std::move(o));
    }
    return listed;
  }
  if (method == "send" || method == "cancel") {
    // `to`: a pid ("0.42") or a registered name.
    std::string to = text_param(p, "to", true);
    auto target = runtime::pid::parse(to);
    runtime::pid pid = target && *target ? *target : sched.whereis(to);
    runtime::process* proc = pid ? sched.find(pid) : nullptr;
    if (!proc) throw rpc_error{k_not_found, "no process or name '" + to + "'"};
    std::string topic = "CANCEL";
    runtime::value payload;
    if (method == "send") {
      topic = text_param(p, "topic", true);
      if (topic.empty() || topic.size() > 256) {
        proc->release_ref();
        throw rpc_error{k_invalid_params, "\"topic\" must be 1-256 bytes"};
      }
      const json::value* v = p.if_contains("payload");
      payload = v ? from_json(*v) : runtime::value();
    } else {
      std::string reason = text_param(p, "reason", false);
      payload = runtime::value::map{{"reason", reason.empty() ? "canceled" : reason}};
    }
    std::string bytes;
    runtime::encode_value(payload, bytes);
    runtime::message* m = runtime::message::make(runtime::pid{}, topic, bytes);
    if (m) proc->deliver(m);
    proc->release_ref();
    if (!m) throw rpc_error{k_failed, "out of memory"};
    return true;
  }
  if (method == "kill") {
    runtime::pid pid = pid_param(p);
    std::string reason = text_param(p, "reason", false);
    if (!sched.kill(pid, runtime::exit_reason::killed,
                    reason.empty() ? "killed by a client" : reason))
      throw rpc_error{k_not_found, "no process " + pid.to_string()};
    return true;
  }
  if (method == "subscribe") {
    // Follow one process: its past log lines now, then `log` notifications,
    // then one `exit` notification that ends the subscription.
    runtime::pid pid = pid_param(p);
    bool logs = bool_param(p, "logs", true);
    bool backlog = bool_param(p, "backlog", true);
    runtime::log_level level = d.backlog_level;
    if (std::string l = text_param(p, "level", false); !l.empty()) {
      auto parsed = runtime::parse_level(l);
      if (!parsed) throw rpc_error{k_invalid_params, "\"level\" is debug, info, warn or error"};
      level = *parsed;
    }
    std::lock_guard lock(d.events_mu);
    json::array past;
    if (backlog && logs)
      for (const log_line& line : d.log_backlog)
        if (line.serial == pid.serial && line.level >= level) past.push_back(log_json(line));
    json::object result{{"pid", pid.to_string()}, {"backlog", std::move(past)}};
    // Counted before looking the process up, so that its exit hook, which
    // runs after the process left the table, cannot miss this subscriber.
    d.subscriptions.fetch_add(1);
    runtime::process* proc = sched.find(pid);
    if (!proc) {
      d.subscriptions.fetch_sub(1);
      auto it = d.exits.find(pid.serial);
      if (it == d.exits.end())
        throw rpc_error{k_not_found,
                        "no process " + pid.to_string() + " (or its exit is forgotten)"};
      result["exit"] = exit_json(it->second);
      return result;
    }
    proc->release_ref();
    d.subscribers[pid.serial].push_back({weak_from_this(), logs, level});
    result["subscribed"] = true;
    return result;
  }
  if (method == "unsubscribe") {
    runtime::pid pid = pid_param(p);
    std::lock_guard lock(d.events_mu);
    auto it = d.subscribers.find(pid.serial);
    bool had = false;
    if (it != d.subscribers.end()) {
      auto& subs = it->second;
      auto self = weak_from_this();
      auto gone = std::remove_if(subs.begin(), subs.end(), [&](const subscriber& s) {
        return !s.conn.owner_before(self) && !self.owner_before(s.conn);
      });
      had = gone != subs.end();
      d.subscriptions.fetch_sub(static_cast<std::size_t>(subs.end() - gone));
      subs.erase(gone, subs.end());
      if (subs.empty()) d.subscribers.erase(it);
    }
    return had;
  }
  if (method == "reload") {
    // With "path": that file's code only. Without: the config, then all code.
    std::string path = text_param(p, "path", false);
    if (!path.empty()) {
      std::string canonical = fs::weakly_canonical(fs::absolute(path)).string();
      return json::object{{"code", d.code_changed({canonical}, false)}};
    }
    json::object result;
    try {
      result = d.reload();
    } catch (const config_error& e) {
      throw rpc_error{k_failed, std::string("config not reloaded: ") + e.what()};
    }
    result["code"] = d.code_changed({}, true);
    return result;
  }
  if (method == "shutdown") {
    asio::post(d.io, [owner = &d] { owner->begin_stop(); });
    return true;
  }
  throw rpc_error{k_method_not_found, "unknown method '" + method + "'"};
}

// Each workflow runs under a supervisor of its own, so that its restart
// policy, permissions, limits and module classes are its alone.
runtime::pid daemon::impl::start_workflow(const workflow_config& w, std::string& why,
                                          std::shared_ptr<const runtime::code_pin> pin) {
  runtime::value::array args;
  for (const auto& a : w.args) args.emplace_back(a);
  runtime::value::map child{
      {"name", w.name}, {"script", w.script}, {"args", std::move(args)}, {"restart", w.restart}};
  runtime::value::map spec{
      {"strategy", "one_for_one"},
      {"intensity", static_cast<std::int64_t>(w.intensity)},
      {"period", w.period},
      {"backoff", runtime::value::map{{"initial", w.backoff_initial}, {"max", w.backoff_max}}},
      {"children", runtime::value::array{runtime::value(std::move(child))}}};
  runtime::process_context ctx;
  ctx.limits = w.limits;
  ctx.permissions = w.permissions;
  ctx.allowed_classes = w.classes;
  ctx.owner = "workflow:" + w.name;
  ctx.pinned_code = pin;
  std::string folder = fs::path(w.script).parent_path().string();
  runtime::error err;
  runtime::pid pid = modules::start_supervisor(eng->scheduler(), runtime::value(std::move(spec)),
                                               folder, folder, {}, &err, &ctx);
  if (!pid) why = err.message;
  if (pid && w.reload == "restart") {
    remember_code(w, pin.get());
  } else {
    running_code.erase(w.name);
  }
  if (pin) {
    rolled_back.insert(w.name);
  } else if (rolled_back.erase(w.name) > 0) {
    code_errors.erase(w.name);  // started on the files again: the rollback is over
  }
  return pid;
}

void daemon::impl::remember_code(const workflow_config& w, const runtime::code_pin* pin) {
  runtime::code_cache& code = eng->scheduler().code();
  std::string script = fs::weakly_canonical(w.script).string();
  auto& known = running_code[w.name].chunks;
  if (pin) {
    known = pin->chunks;
    return;
  }
  known.clear();
  known[script] = code.get(script);
  for (const std::string& dep : code.dependencies(script)) known[dep] = code.get(dep);
}

const workflow_config* daemon::impl::workflow_named(const std::string& name) const {
  for (const auto& w : cfg.workflows)
    if (w.name == name) return &w;
  return nullptr;
}

void daemon::impl::watch_code() {
  std::set<std::string> dirs;
  std::vector<std::string> roots = cfg.script_roots;
  if (roots.empty()) roots.push_back(fs::path(cfg.path).parent_path().string());
  for (const auto& r : roots) dirs.insert(fs::weakly_canonical(r).string());
  for (const auto& w : cfg.workflows)
    dirs.insert(fs::weakly_canonical(fs::path(w.script).parent_path()).string());
  watcher = std::make_unique<file_watcher>(
      io, [this](std::vector<std::string> paths, bool everything) {
        if (!stopping) code_changed(paths, everything);
      });
  for (const auto& dir : dirs) {
    try {
      watcher->watch(dir);
    } catch (const std::exception& e) {
      runtime::logger().warn("not watching {} for code changes: {}", dir, e.what());
    }
  }
}

json::object daemon::impl::code_changed(const std::vector<std::string>& paths, bool everything) {
  runtime::scheduler& sched = eng->scheduler();
  runtime::code_cache& code = sched.code();
  ++file_changes;
  // What each reload workflow runs now, for a rollback: packages it required
  // since it started are still cached as they were before this change.
  for (auto& [name, known] : running_code) {
    const workflow_config* w = workflow_named(name);
    if (!w || rolled_back.count(name)) continue;
    for (const std::string& dep : code.dependencies(fs::weakly_canonical(w->script).string()))
      if (!known.chunks.count(dep))
        if (runtime::chunk_ptr was = code.cached(dep)) known.chunks.emplace(dep, std::move(was));
  }
  bool folders = everything;
  for (const auto& p : paths) {
    code.invalidate(p);
    folders |= fs::path(p).extension() != ".lua";  // a folder went or came: its files too
  }
  if (folders) code.invalidate_all();
  std::size_t told = sched.notify_upgrade(paths, everything);
  json::array restarted, failed;
  for (const auto& w : cfg.workflows) {
    if (w.reload != "restart" || restarting.count(w.name)) continue;
    auto known = running_code.find(w.name);
    if (known == running_code.end()) continue;  // not running, or not started by us
    std::string script = fs::weakly_canonical(w.script).string();
    std::vector<std::string> uses = code.dependencies(script);
    uses.insert(uses.begin(), script);
    // A rolled-back workflow runs pinned code that differs from the files on
    // purpose: only a new change to one of its files tries the files again.
    bool pinned = rolled_back.count(w.name) > 0;
    const auto& ran = known->second.chunks;
    bool changed = false, touched = everything;
    std::string problem;
    for (const auto& path : uses) {
      runtime::chunk_ptr now = code.get(path);
      auto was = ran.find(path);
      bool listed = std::find(paths.begin(), paths.end(), path) != paths.end();
      touched |= listed;
      if (now->compile_error) {
        // A package that is gone may be one the new code no longer needs.
        bool gone = now->compile_error->kind == runtime::error_kind::not_found && path != script;
        bool differs =
            listed || everything || (!pinned && (was == ran.end() || was->second != now));
        if (differs && !gone) problem = now->compile_error->message;
        continue;
      }
      if (was == ran.end()) {
        changed |= listed;
      } else {
        // The same content compiles to the same bytecode: a cache of size 0
        // hands out a new chunk on every get, and that is not a change.
        changed |= was->second != now && was->second->bytecode != now->bytecode;
      }
    }
    if (pinned) changed = touched;
    if (!problem.empty()) {
      ++code_failures;
      code_errors[w.name] = problem;
      failed.push_back(json::string(w.name));
      runtime::logger().error(
          "workflow {}: the new code does not compile; the old code keeps running: {}", w.name,
          problem);
      continue;
    }
    if (pinned && !changed) continue;  // it keeps saying it was rolled back
    code_errors.erase(w.name);
    if (!changed) continue;
    restarted.push_back(json::string(w.name));
    restart_on_new_code(w);
  }
  if (!restarted.empty() || !failed.empty() || told > 0)
    runtime::logger().info(
        "code changed ({} files): {} workflows restarting, {} not compiling, {} "
        "processes told to upgrade",
        everything ? std::string("all") : std::to_string(paths.size()), restarted.size(),
        failed.size(), told);
  return json::object{{"restarting", std::move(restarted)},
                      {"not_compiling", std::move(failed)},
                      {"upgrade_messages", told}};
}

// CANCEL to the workflow's processes (not its supervisor), up to the grace
// period (at most 5 s) for them to finish, then a fresh supervisor on the new
// code. Runs on the io thread without blocking it.
void daemon::impl::restart_on_new_code(const workflow_config& w) {
  runtime::scheduler& sched = eng->scheduler();
  // What it runs now is what a rollback goes back to.
  auto previous = std::make_shared<const runtime::code_pin>(running_code[w.name]);
  runtime::pid sup;
  {
    std::lock_guard lock(workflows_mu);
    sup = workflow_pids[w.name];
  }
  std::vector<runtime::pid> workers;
  std::string owner = "workflow:" + w.name;
  sched.visit([&](runtime::process& proc) {
    if (proc.id() != sup && proc.context().owner == owner) workers.push_back(proc.id());
  });
  for (runtime::pid id : workers) sched.cancel(id, "code reload");
  restarting.insert(w.name);
  auto deadline = std::chrono::steady_clock::now() +
                  std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                      std::chrono::duration<double>(std::min(cfg.server.grace_period, 5.0)));
  auto timer = std::make_shared<asio::steady_timer>(io);
  auto poll = std::make_shared<std::function<void()>>();
  *poll = [this, name = w.name, workers, deadline, timer, poll, previous] {
    bool alive = false;
    for (runtime::pid id : workers) {
      if (runtime::process* proc = eng->scheduler().find(id)) {
        proc->release_ref();
        alive = true;
      }
    }
    if (alive && !stopping && std::chrono::steady_clock::now() < deadline) {
      timer->expires_after(std::chrono::milliseconds(20));
      timer->async_wait([poll](boost::system::error_code ec) {
        if (!ec) (*poll)();
      });
      return;
    }
    std::string finished = name;  // the closure dies on the next line: copy first
    auto was = previous;
    impl* self = this;
    *poll = nullptr;  // (breaks the closure's reference to itself)
    self->finish_code_restart(finished, std::move(was));
  };
  (*poll)();
}

void daemon::impl::finish_code_restart(const std::string& name,
                                       std::shared_ptr<const runtime::code_pin> previous) {
  restarting.erase(name);
  if (stopping) return;
  const workflow_config* now = workflow_named(name);
  if (!now) return;  // removed by a reload meanwhile
  stop_workflow(name);
  std::string why;
  runtime::pid pid = start_workflow(*now, why);
  {
    std::lock_guard lock(workflows_mu);
    workflow_pids[name] = pid;
  }
  if (!pid) {
    runtime::logger().error("workflow {} could not restart on new code: {}", name, why);
    return;
  }
  ++code_restarts;
  runtime::logger().info("workflow {} restarted on new code (supervisor {})", name,
                         pid.to_string());
  if (now->reload_trial > 0 && previous) {
    trials[name] = code_trial{std::move(previous), pid.serial,
                              std::chrono::steady_clock::now() +
                                  std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                      std::chrono::duration<double>(now->reload_trial))};
    trials_open.store(trials.size());
  }
}

void daemon::impl::forget_trial(const std::string& name) {
  trials.erase(name);
  trials_open.store(trials.size());
}

void daemon::impl::on_workflow_failure(const std::string& name, std::uint64_t serial,
                                       const std::string& why) {
  auto t = trials.find(name);
  if (t == trials.end() || serial < t->second.first_serial) return;  // not new code on trial
  bool in_time = std::chrono::steady_clock::now() < t->second.until;
  std::shared_ptr<const runtime::code_pin> previous = std::move(t->second.previous);
  forget_trial(name);
  const workflow_config* w = workflow_named(name);
  if (!in_time || !w || stopping || restarting.count(name)) return;
  stop_workflow(name);
  std::string start_failure;
  runtime::pid pid = start_workflow(*w, start_failure, previous);
  {
    std::lock_guard lock(workflows_mu);
    workflow_pids[name] = pid;
  }
  ++code_rollbacks;
  char trial[32];
  std::snprintf(trial, sizeof trial, "%g", w->reload_trial);
  code_errors[name] = "the new code failed within " + std::string(trial) + " s of its start (" +
                      why + "); running the previous code until its files change again";
  if (pid) {
    runtime::logger().error("workflow {}: {}; supervisor {}", name, code_errors[name],
                            pid.to_string());
  } else {
    runtime::logger().error(
        "workflow {}: the new code failed ({}) and the previous code could "
        "not start: {}",
        name, why, start_failure);
  }
}

bool daemon::impl::stop_workflow(const std::string& name) {
  runtime::scheduler& sched = eng->scheduler();
  runtime::pid old;
  {
    std::lock_guard lock(workflows_mu);
    old = workflow_pids[name];
  }
  running_code.erase(name);
  forget_trial(name);
  if (!old || !sched.kill(old, runtime::exit_reason::killed, "workflow stopped")) return false;
  // Its children are linked to the supervisor and end with it.
  for (int i = 0; i < 1000; ++i) {  // up to a second, on the io thread: admin only
    runtime::process* still = sched.find(old);
    if (!still) break;
    still->release_ref();
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

json::object daemon::impl::reload() {
  config fresh = load_config(cfg.path);  // a bad file changes nothing
  json::array added, removed, changed, unchanged;
  auto find_in = [](const std::vector<workflow_config>& list, const std::string& name) {
    const workflow_config* found = nullptr;
    for (const auto& w : list)
      if (w.name == name) found = &w;
    return found;
  };
  auto is_running = [this](const std::string& name) {
    runtime::pid pid;
    {
      std::lock_guard lock(workflows_mu);
      pid = workflow_pids[name];
    }
    runtime::process* sup = pid ? eng->scheduler().find(pid) : nullptr;
    if (sup) sup->release_ref();
    return sup != nullptr;
  };
  auto start = [this](const workflow_config& w) {
    std::string why;
    runtime::pid pid = start_workflow(w, why);
    std::lock_guard lock(workflows_mu);
    workflow_pids[w.name] = pid;
    if (pid)
      runtime::logger().info("workflow {} started (supervisor {})", w.name, pid.to_string());
    else
      runtime::logger().error("workflow {} could not start: {}", w.name, why);
  };
  for (const auto& w : cfg.workflows) {
    if (find_in(fresh.workflows, w.name)) continue;
    removed.push_back(json::string(w.name));
    if (stop_workflow(w.name)) runtime::logger().info("workflow {} removed: stopped", w.name);
    std::lock_guard lock(workflows_mu);
    workflow_pids.erase(w.name);
  }
  for (const auto& w : fresh.workflows) {
    const workflow_config* before = find_in(cfg.workflows, w.name);
    if (!before) {
      added.push_back(json::string(w.name));
      if (w.start == "boot") start(w);
      continue;
    }
    if (*before == w) {
      unchanged.push_back(json::string(w.name));
      continue;
    }
    changed.push_back(json::string(w.name));
    bool was_running = stop_workflow(w.name) || is_running(w.name);
    if (was_running || w.start == "boot") start(w);
  }
  bool restart_needed = fresh.server != cfg.server || fresh.storage != cfg.storage ||
                        fresh.limits.max_processes != cfg.limits.max_processes;
  cfg.workflows = std::move(fresh.workflows);
  cfg.profiles = std::move(fresh.profiles);
  cfg.script_roots = std::move(fresh.script_roots);
  cfg.limits.process = fresh.limits.process;
  cfg.limits.max_connections = fresh.limits.max_connections;
  cfg.limits.max_request_bytes = fresh.limits.max_request_bytes;
  runtime::logger().info("reloaded {}: {} workflows added, {} removed, {} changed", cfg.path,
                         added.size(), removed.size(), changed.size());
  if (restart_needed)
    runtime::logger().warn(
        "{}: changes to [server], [storage] or limits.max_processes take effect at the next start",
        cfg.path);
  return json::object{{"added", std::move(added)},
                      {"removed", std::move(removed)},
                      {"changed", std::move(changed)},
                      {"unchanged", std::move(unchanged)},
                      {"restart_needed", restart_needed}};
}

json::object daemon::impl::log_json(const log_line& line) {
  json::object o{{"pid", line.pid},
                 {"time", line.time},
                 {"level", runtime::level_name(line.level)},
                 {"message", line.message}};
  if (!line.workflow.empty()) o["workflow"] = line.workflow;
  if (!line.fields.empty()) {
    boost::system::error_code ec;
    json::value f = json::parse(line.fields, ec);
    o["fields"] = ec ? json::value(json::string(line.fields)) : std::move(f);
  }
  return o;
}

void daemon::impl::log_tap::on_log(const runtime::log_record& rec) noexcept {
  try {
    d->record_log(rec);
  } catch (...) {
    // Out of memory: the line still reaches stderr; only followers miss it.
  }
}

void daemon::impl::record_log(const runtime::log_record& rec) {  // a worker thread
  log_line line{rec.pid_serial,
                std::string(rec.pid),
                std::string(rec.workflow),
                runtime::utc_timestamp(std::chrono::system_clock::now()),
                std::string(rec.message.substr(0, k_log_message_bytes)),
                std::string(rec.fields.substr(0, k_log_message_bytes)),
                rec.level};
  if (rec.message.size() > k_log_message_bytes) line.message += "...(truncated)";
  std::vector<std::weak_ptr<connection>> followers;
  {
    std::lock_guard lock(events_mu);
    if (auto it = subscribers.find(rec.pid_serial); it != subscribers.end())
      for (const subscriber& s : it->second)
        if (s.logs && rec.level >= s.level) followers.push_back(s.conn);
    if (rec.level >= backlog_level) {
      log_backlog.push_back(line);
      if (log_backlog.size() > k_log_lines_kept) log_backlog.pop_front();
    }
  }
  if (followers.empty()) return;
  asio::post(io, [followers = std::move(followers), params = json::value(log_json(line))] {
    for (const auto& f : followers)
      if (auto c = f.lock()) c->notify("log", params, true);
  });
}

void daemon::impl::on_any_exit(const runtime::exit_info& e,
                               const runtime::process_context& ctx) {  // a worker thread
  if (trials_open.load(std::memory_order_relaxed) > 0 &&
      (e.reason == runtime::exit_reason::error || e.reason == runtime::exit_reason::limit) &&
      ctx.owner.starts_with("workflow:") && !ctx.pinned_code) {
    asio::post(io, [this, name = ctx.owner.substr(9), serial = e.id.serial, why = e.err.message] {
      on_workflow_failure(name, serial, why);
    });
  }
  // The subscriber counts itself before it finds the process in the table;
  // this runs after the process left the table. If its look-up found the
  // process, the table's lock orders its count before this load.
  if (subscriptions.load() == 0) return;
  std::vector<subscriber> followers;
  {
    std::lock_guard lock(events_mu);
    auto it = subscribers.find(e.id.serial);
    if (it == subscribers.end()) return;
    followers = std::move(it->second);
    subscribers.erase(it);
    subscriptions.fetch_sub(followers.size());
  }
  asio::post(io, [followers = std::move(followers), params = json::value(exit_json(e))] {
    for (const auto& f : followers)
      if (auto c = f.conn.lock()) c->notify("exit", params, false);
  });
}

json::object daemon::impl::stats_json() {
  runtime::scheduler& sched = eng->scheduler();
  auto s = sched.stats();
  json::object by_state;
  std::uint64_t lua_bytes = 0;
  sched.visit([&](runtime::process& proc) {
    json::value& n = by_state[proc.status()];
    n = (n.is_int64() ? n.get_int64() : 0) + 1;
    lua_bytes += proc.memory_used();
  });
  json::object exits_by;
  for (std::size_t i = 0; i < s.exits.size(); ++i)
    exits_by[runtime::reason_name(static_cast<runtime::exit_reason>(i))] = s.exits[i];
  json::object commands;
  for (std::size_t i = 1; i < s.commands.size(); ++i)
    commands[dispatcher::command_name(static_cast<dispatcher::command_id>(i))] = s.commands[i];
  auto f = eng->fetch().snapshot();
  auto cs = sched.code().stats();
  std::size_t open_connections = 0;
  for (auto& w : connections) open_connections += w.expired() ? 0 : 1;
  return json::object{
      {"uptime",
       std::chrono::duration<double>(std::chrono::steady_clock::now() - started_at).count()},
      {"processes", json::object{{"alive", s.alive},
                                 {"by_state", std::move(by_state)},
                                 {"spawned", s.spawned},
                                 {"exited", s.exited},
                                 {"exits", std::move(exits_by)}}},
      {"scheduler", json::object{{"workers", sched.worker_count()},
                                 {"yields", s.yields},
                                 {"preemptions", s.preemptions},
                                 {"steals", s.steals},
                                 {"dead_letters", s.dead_letters},
                                 {"commands", std::move(commands)}}},
      {"timers", json::object{{"pending", eng->clock().pending()}}},
      {"fetch", json::object{{"in_flight", f.in_flight},
                             {"queued", f.queued},
                             {"idle_connections", f.idle_connections},
                             {"connections_opened", f.connections_opened},
                             {"completed", f.completed}}},
      {"store", json::object{{"commits", eng->storage().commits()},
                             {"writes", eng->storage().committed_writes()}}},
      {"memory", json::object{{"resident", resident_bytes()}, {"lua", lua_bytes}}},
      {"code",
       json::object{{"cache_hits", cs.hits},
                    {"cache_misses", cs.misses},
                    {"compiles", cs.compiles},
                    {"compile_errors", cs.compile_errors},
                    {"evictions", cs.evictions},
                    {"entries", cs.entries},
                    {"bytes", cs.bytes},
                    {"file_changes", file_changes},
                    {"workflow_restarts", code_restarts},
                    {"workflow_code_errors", code_failures},
                    {"workflow_rollbacks", code_rollbacks},
                    {"watching", watcher ? (watcher->polling() ? "polling" : "inotify") : "off"}}},
      {"connections", open_connections}};
}

void daemon::impl::on_exit(const runtime::exit_info& e) {  // a worker thread
  std::vector<waiter> ready;
  {
    std::lock_guard lock(events_mu);
    exits[e.id.serial] = e;
    exit_order.push_back(e.id.serial);
    if (exit_order.size() > k_exits_kept) {
      exits.erase(exit_order.front());
      exit_order.pop_front();
    }
    auto it = waiters.find(e.id.serial);
    if (it != waiters.end()) {
      ready = std::move(it->second);
      waiters.erase(it);
    }
  }
  if (ready.empty()) return;
  asio::post(io, [ready = std::move(ready), result = json::value(exit_json(e))] {
    for (const waiter& w : ready)
      if (auto c = w.conn.lock()) c->finish_deferred(w.id, result);
  });
}

void daemon::impl::accept() {
  acceptor.async_accept([this](boost::system::error_code ec, local::socket s) {
    if (ec) return;  // closed: stopping
    connections.erase(std::remove_if(connections.begin(), connections.end(),
                                     [](const auto& w) { return w.expired(); }),
                      connections.end());
    if (connections.size() >= cfg.limits.max_connections) {
      std::string line =
          R"({"jsonrpc":"2.0","id":null,"error":{"code":-32000,"message":"too many connections"}})"
          "\n";
      boost::system::error_code ignored;
      asio::write(s, asio::buffer(line), ignored);
    } else {
      auto c = std::make_shared<connection>(*this, std::move(s));
      connections.push_back(c);
      c->start();
    }
    accept();
  });
}

void daemon::impl::watch_hangup() {
  hangup.async_wait([this](boost::system::error_code ec, int) {
    if (ec) return;
    runtime::logger().info("SIGHUP: reloading {}", cfg.path);
    try {
      reload();
    } catch (const std::exception& e) {  // the old config stays in force
      runtime::logger().error("config not reloaded: {}", e.what());
    }
    watch_hangup();
  });
}

void daemon::impl::begin_stop() {
  if (stopping) return;
  stopping = true;
  boost::system::error_code ignored;
  acceptor.close(ignored);
  signals.cancel(ignored);
  hangup.cancel(ignored);
  if (watcher) watcher->stop();
  for (auto& w : connections)
    if (auto c = w.lock()) c->close();
}

daemon::daemon(config cfg) : impl_(std::make_unique<impl>(std::move(cfg))) {}

daemon::~daemon() {
  request_stop();
  if (impl_->io_thread.joinable()) impl_->io_thread.join();
  if (impl_->eng) impl_->eng->stop();  // no process logs or exits after this
  runtime::set_log_tap(nullptr);
}

void daemon::start() {
  impl& d = *impl_;
  const std::string& path = d.cfg.server.socket;
  fs::create_directories(fs::path(path).parent_path());
  if (fs::exists(path)) {
    // A live daemon answers a connect; a stale file (after a crash) does not.
    local::socket probe(d.io);
    boost::system::error_code ec;
    probe.connect(local::endpoint(path), ec);
    if (!ec) throw std::runtime_error("another luad is already serving on " + path);
    fs::remove(path);
  }
  engine_options eo;
  eo.scheduler = runtime::scheduler_options::with_workers(d.cfg.server.workers);
  eo.scheduler.max_processes = d.cfg.limits.max_processes;
  eo.scheduler.exit_hook = [&d](const runtime::exit_info& e, const runtime::process_context& ctx) {
    d.on_any_exit(e, ctx);
  };
  eo.data_dir = d.cfg.storage.data_dir;
  d.eng = std::make_unique<engine>(std::move(eo));
  d.acceptor.open(local());
  d.acceptor.bind(local::endpoint(path));
  ::chmod(path.c_str(), static_cast<mode_t>(d.cfg.server.socket_mode));
  d.acceptor.listen();
  d.signals.async_wait([&d](boost::system::error_code ec, int sig) {
    if (ec) return;
    runtime::logger().info("signal {}: shutting down", sig);
    d.begin_stop();
  });
  d.eng->scheduler().code().configure({d.cfg.scripts.cache_bytes, std::chrono::milliseconds(1000)});
  d.watch_hangup();
  if (d.cfg.scripts.watch) d.watch_code();
  d.accept();
  if (auto level = runtime::parse_level(d.cfg.server.log_level)) d.backlog_level = *level;
  runtime::set_log_tap(&d.tap);
  for (const auto& w : d.cfg.workflows) {
    if (w.start != "boot") continue;
    std::string why;
    runtime::pid pid = d.start_workflow(w, why);
    std::lock_guard lock(d.workflows_mu);
    d.workflow_pids[w.name] = pid;
    if (pid)
      runtime::logger().info("workflow {} started (supervisor {})", w.name, pid.to_string());
    else
      runtime::logger().error("workflow {} could not start: {}", w.name, why);
  }
  runtime::logger().info("luad {} serving on {} (data in {})", luad_version, path,
                         d.cfg.storage.data_dir);
}

int daemon::run() {
  impl& d = *impl_;
  d.io.run();  // returns once the acceptor, signals and every connection are gone
  // Shutdown: CANCEL everything, give it the grace period, then stop (kills the rest).
  runtime::scheduler& sched = d.eng->scheduler();
  auto deadline = std::chrono::steady_clock::now() +
                  std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                      std::chrono::duration<double>(d.cfg.server.grace_period));
  sched.cancel_all("the daemon is shutting down");
  while (sched.alive() > 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  d.eng->stop();
  runtime::set_log_tap(nullptr);
  boost::system::error_code ignored;
  fs::remove(d.cfg.server.socket, ignored);
  runtime::logger().info("stopped");
  return 0;
}

void daemon::request_stop() {
  asio::post(impl_->io, [this] { impl_->begin_stop(); });
}

int serve(const std::string& config_path, const std::string& log_level) {
  config cfg;
  try {
    cfg = load_config(config_path);
  } catch (const config_error& e) {
    std::cerr << e.what() << '\n';
    return 2;
  }
  auto level = runtime::parse_level(log_level.empty() ? cfg.server.log_level : log_level);
  runtime::init_logging(level.value_or(runtime::log_level::info), cfg.server.log_format == "json"
                                                                      ? runtime::log_format::json
                                                                      : runtime::log_format::text);
  try {
    daemon d(std::move(cfg));
    d.start();
    return d.run();
  } catch (const std::exception& e) {
    std::cerr << "luad serve: " << e.what() << '\n';
    return 1;
  }
}

}  // namespace luad::server
