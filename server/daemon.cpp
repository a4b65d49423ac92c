// The daemon: the Unix socket, peer checks, the JSON-RPC methods, exit
// tracking for submitted processes, and the shutdown sequence.
//
// DESIGN. Everything that touches a socket runs on one Asio thread (`io`).
// Workers report exits through on_exit callbacks, which only record the exit
// under `exits_mu` and post the waiting replies to `io`. A connection reads one
// line at a time (bounded by limits.max_request_size) and stops reading while
// more than `k_max_pending_bytes` of replies wait to be written, so a client
// that never reads cannot make the daemon buffer without bound.
#include "server/daemon.hpp"

#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <boost/asio.hpp>
#include <boost/json.hpp>

#include <deque>
#include <filesystem>
#include <iostream>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "modules/supervisor.hpp"
#include "runtime/code.hpp"
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
constexpr std::size_t k_exits_kept = 10000;

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
  std::thread io_thread;
  bool stopping = false;  // io thread only

  struct connection;
  std::vector<std::weak_ptr<connection>> connections;  // io thread only

  // Exits of processes submitted through the socket, and who waits for them.
  struct waiter {
    std::weak_ptr<connection> conn;
    json::value id;
  };
  std::mutex exits_mu;
  std::unordered_map<std::uint64_t, runtime::exit_info> exits;
  std::deque<std::uint64_t> exit_order;
  std::unordered_map<std::uint64_t, std::vector<waiter>> waiters;

  // Config workflows: name -> the pid of the supervisor running it (empty
  // when not started). Written at start, read by the io thread.
  std::mutex workflows_mu;
  std::unordered_map<std::string, runtime::pid> workflow_pids;

  explicit impl(config c) : cfg(std::move(c)) {}
  runtime::pid start_workflow(const workflow_config& w, std::string& why);

  void on_exit(const runtime::exit_info& e);
  void accept();
  void begin_stop();
};

struct daemon::impl::connection : std::enable_shared_from_this<connection> {
  impl& d;
  local::socket sock;
  std::string in;
  std::deque<std::string> out;
  std::size_t pending_bytes = 0;
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
    if (reading || closed || pending_bytes > k_max_pending_bytes) return;
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

  void write() {
    if (writing || out.empty() || !sock.is_open()) return;
    writing = true;
    auto self = shared_from_this();
    asio::async_write(sock, asio::buffer(out.front()),
                      [self](boost::system::error_code ec, std::size_t) {
                        self->writing = false;
                        self->pending_bytes -= self->out.front().size();
                        self->out.pop_front();
                        if (ec) {
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
    if (!deferred) send_result(id, std::move(result));
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
  if (method == "stats") {
    auto s = sched.stats();
    return json::object{{"alive", s.alive},
                        {"spawned", s.spawned},
                        {"exited", s.exited},
                        {"yields", s.yields},
                        {"preemptions", s.preemptions},
                        {"dead_letters", s.dead_letters},
                        {"store_commits", d.eng->storage().commits()},
                        {"store_writes", d.eng->storage().committed_writes()}};
  }
  if (method == "spawn") {
    std::string source = text_param(p, "source", false);
    std::string script = text_param(p, "script", false);
    if (source.empty() == script.empty())
      throw rpc_error{k_invalid_params, "give exactly one of \"script\" and \"source\""};
    runtime::spawn_options so;
    so.ctx.limits = d.cfg.limits.process;
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
        fs::path candidate = fs::weakly_canonical(fs::path(root) / script);
        auto rel = candidate.lexically_relative(fs::weakly_canonical(root));
        if (!rel.empty() && *rel.begin() != ".." && fs::exists(candidate)) {
          found_path = candidate.string();
          so.ctx.script_root = fs::weakly_canonical(root).string();
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
      std::lock_guard lock(d.exits_mu);
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
    std::lock_guard lock(d.exits_mu);
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
    json::array listed;
    sched.visit([&](runtime::process& proc) {
      const char* st = proc.status();
      if (!status.empty() && status != st) return;
      json::object o{{"pid", proc.id().to_string()},
                     {"status", st},
                     {"script", proc.script_name()},
                     {"memory", proc.memory_used()}};
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
      if (action != "start" && running) {
        // Its children are linked to the supervisor and end with it.
        sched.kill(old, runtime::exit_reason::killed, "workflow stopped by a client");
        for (int i = 0; i < 1000; ++i) {  // up to a second, on the io thread: admin only
          runtime::process* still = sched.find(old);
          if (!still) break;
          still->release_ref();
          std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
      }
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
  if (method == "shutdown") {
    asio::post(d.io, [owner = &d] { owner->begin_stop(); });
    return true;
  }
  throw rpc_error{k_method_not_found, "unknown method '" + method + "'"};
}

// Each workflow runs under a supervisor of its own, so that its restart
// policy, permissions, limits and module classes are its alone.
runtime::pid daemon::impl::start_workflow(const workflow_config& w, std::string& why) {
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
  std::string folder = fs::path(w.script).parent_path().string();
  runtime::error err;
  runtime::pid pid = modules::start_supervisor(eng->scheduler(), runtime::value(std::move(spec)),
                                               folder, folder, {}, &err, &ctx);
  if (!pid) why = err.message;
  return pid;
}

void daemon::impl::on_exit(const runtime::exit_info& e) {  // a worker thread
  std::vector<waiter> ready;
  {
    std::lock_guard lock(exits_mu);
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
      if (auto c = w.conn.lock()) c->send_result(w.id, result);
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

void daemon::impl::begin_stop() {
  if (stopping) return;
  stopping = true;
  boost::system::error_code ignored;
  acceptor.close(ignored);
  signals.cancel(ignored);
  for (auto& w : connections)
    if (auto c = w.lock()) c->close();
}

daemon::daemon(config cfg) : impl_(std::make_unique<impl>(std::move(cfg))) {}

daemon::~daemon() {
  request_stop();
  if (impl_->io_thread.joinable()) impl_->io_thread.join();
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
  d.accept();
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
  boost::system::error_code ignored;
  fs::remove(d.cfg.server.socket, ignored);
  runtime::logger().info("stopped");
  return 0;
}

void daemon::request_stop() {
  asio::post(impl_->io, [this] { impl_->begin_stop(); });
}

int serve(const std::string& config_path) {
  config cfg;
  try {
    cfg = load_config(config_path);
  } catch (const config_error& e) {
    std::cerr << e.what() << '\n';
    return 2;
  }
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
