// The client commands (`luad submit`, `ps`, `logs`, `reload`, ...): requests
// built with proto/json_rpc over a blocking Asio Unix socket, the reply
// printed for a person (or as JSON with --json).
#include "server/client.hpp"

#include <sys/un.h>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/write.hpp>
#include <boost/json.hpp>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <stdexcept>

#include "proto/json_rpc.hpp"
#include "runtime/json.hpp"
#include "server/metrics.hpp"

namespace luad::server {

namespace {

namespace asio = boost::asio;
namespace json = boost::json;
using local = asio::local::stream_protocol;

// The longest line the client takes from the daemon: far above any real reply
// (a `ps` of 100,000 processes is about 10 MiB), low enough that a runaway
// peer cannot make the client buffer without end.
constexpr std::size_t k_max_line = std::size_t{64} << 20;

// A blocking connection to the daemon: requests out, reply and notification
// lines in (proto/PROTOCOL.md). Throws std::runtime_error with the message
// the command prints; every failure here means exit code 5.
class rpc_connection {
 public:
  explicit rpc_connection(const std::string& socket_path) {
    if (socket_path.size() >= sizeof(sockaddr_un::sun_path))
      throw std::runtime_error("socket path too long");
    boost::system::error_code ec;
    socket_.connect(local::endpoint(socket_path), ec);
    if (ec)
      throw std::runtime_error("cannot reach the daemon at " + socket_path +
                               " (is `luad serve` running? --socket or LUAD_SOCKET set the path)");
  }

  /// Sends one request; returns its id.
  std::int64_t request(std::string_view method, json::object params) {
    std::int64_t id = next_id_++;
    std::string line = proto::frame(proto::make_request(id, method, std::move(params)));
    boost::system::error_code ec;
    asio::write(socket_, asio::buffer(line), ec);  // the daemon hanging up is EPIPE, not SIGPIPE
    if (ec) throw std::runtime_error("the daemon closed the connection");
    return id;
  }

  /// The next line the daemon sends (a reply or a notification), parsed.
  json::object next() {
    boost::system::error_code ec;
    std::size_t n =
        asio::read_until(socket_, asio::dynamic_buffer(buffered_, k_max_line), '\n', ec);
    if (ec == asio::error::not_found)
      throw std::runtime_error("the daemon sent a line longer than 64 MiB");
    if (ec) throw std::runtime_error("the daemon closed the connection");
    json::value v = json::parse(std::string_view(buffered_).substr(0, n - 1), ec);
    buffered_.erase(0, n);
    if (ec || !v.is_object())
      throw std::runtime_error("the daemon sent something that is not JSON");
    return std::move(v.get_object());
  }

  /// The reply to request `id` (notifications before it are skipped). It has
  /// a "result" or an "error" object, else this throws.
  json::object reply_to(std::int64_t id) {
    for (;;) {
      json::object line = next();
      const json::value* got = line.if_contains("id");
      if (!got || got->is_null()) {
        // A notification, or an error the daemon could not tie to a request
        // (a refused peer, too many connections): that one is for us.
        if (line.contains("error")) return check(std::move(line));
        continue;
      }
      if (got->is_int64() && got->get_int64() == id) return check(std::move(line));
    }
  }

 private:
  static json::object check(json::object reply) {
    const json::value* err = reply.if_contains("error");
    if (reply.contains("result") || (err && err->is_object())) return reply;
    throw std::runtime_error("the daemon sent something that is not a JSON-RPC reply");
  }

  asio::io_context io_;
  local::socket socket_{io_};
  std::string buffered_;
  std::int64_t next_id_ = 1;
};

// One connection, one request, one reply.
json::object call_daemon(const std::string& socket_path, std::string_view method,
                         json::object params) {
  rpc_connection conn(socket_path);
  return conn.reply_to(conn.request(method, std::move(params)));
}

// The message of an error reply, or the error object as JSON.
std::string error_text(const json::value& err) {
  const json::value* msg = err.is_object() ? err.get_object().if_contains("message") : nullptr;
  return msg && msg->is_string() ? std::string(msg->get_string()) : json::serialize(err);
}

// `v` as `luad run` prints values: through the runtime's JSON codec (keys
// sorted, floats as "0.5" rather than Boost's "5E-1"), so `luad submit --wait`
// and `luad run` print the same text for the same script.
std::string as_run_prints(const json::value& v) {
  auto text = runtime::json_encode(proto::from_json(v));
  return text ? std::move(*text) : json::serialize(v);
}

// A table cell: the string field `key` of a listed item, or "-".
std::string cell(const json::object& item, const char* key) {
  const json::value* v = item.if_contains(key);
  return v && v->is_string() ? std::string(v->get_string()) : std::string("-");
}

// "error (runtime): boom" from a workflow's last_exit or supervisor_exit.
std::string exit_cell(const json::object& e) {
  std::string out = cell(e, "reason");
  if (e.contains("kind")) out += " (" + cell(e, "kind") + ")";
  if (e.contains("message")) out += ": " + cell(e, "message");
  return out;
}

// The `workflows` table: one row each, and lines below for what went wrong.
void print_workflows(const json::array& list) {
  std::printf("%-16s %-12s %-10s %-10s %-8s %s\n", "NAME", "STATE", "START", "RESTART", "RESTARTS",
              "SUPERVISOR");
  for (const auto& w : list) {
    const auto& q = w.get_object();
    const json::value* n = q.if_contains("restarts");
    std::string restarts = n && n->is_int64() ? std::to_string(n->get_int64()) : "-";
    bool durable = q.contains("durable");  // (its runs are listed below the workflows)
    std::printf("%-16s %-12s %-10s %-10s %-8s %s\n", cell(q, "name").c_str(),
                cell(q, "state").c_str(), cell(q, "start").c_str(),
                durable ? "durable" : cell(q, "restart").c_str(), restarts.c_str(),
                cell(q, "supervisor").c_str());
    if (q.contains("schedule")) {
      std::string next = "none";
      if (const json::value* t = q.if_contains("next_tick"); t && t->is_number()) {
        std::time_t secs = static_cast<std::time_t>(t->to_number<double>());
        std::tm utc{};
        char buf[32];
        gmtime_r(&secs, &utc);
        std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M UTC", &utc);
        next = buf;
      }
      std::printf("  schedule: %s (catchup %s), next tick %s\n", cell(q, "schedule").c_str(),
                  cell(q, "catchup").c_str(), next.c_str());
    }
    if (const json::value* e = q.if_contains("last_exit"); e && e->is_object())
      std::printf("  last exit: %s\n", exit_cell(e->get_object()).c_str());
    if (const json::value* e = q.if_contains("supervisor_exit"); e && e->is_object())
      std::printf("  supervisor ended: %s\n", exit_cell(e->get_object()).c_str());
    if (q.contains("code_error")) std::printf("  code: %s\n", cell(q, "code_error").c_str());
  }
}

bool is_run_action(const std::string& action) {
  return action == "history" || action == "resume" || action == "terminate";
}

// A JSON field as table text: strings bare, "-" when absent.
std::string text_cell(const json::object& item, const char* key) {
  const json::value* v = item.if_contains(key);
  if (!v || v->is_null()) return "-";
  return v->is_string() ? std::string(v->get_string()) : as_run_prints(*v);
}

// The durable runs below the workflows: one row each, and the error or
// suspension report of those that have one.
void print_runs(const json::array& list) {
  if (list.empty()) return;
  std::printf("\n%-20s %-10s %6s %-12s %-16s %s\n", "RUN", "STATE", "STEPS", "PID", "OWNER",
              "SCRIPT");
  for (const auto& r : list) {
    const auto& q = r.get_object();
    std::printf("%-20s %-10s %6s %-12s %-16s %s\n", cell(q, "run").c_str(),
                cell(q, "state").c_str(), text_cell(q, "steps").c_str(), cell(q, "pid").c_str(),
                cell(q, "owner").c_str(), cell(q, "script").c_str());
    const json::value* d = q.if_contains("detail");
    std::string state = cell(q, "state");
    if (d && d->is_object() && state != "completed")
      std::printf("  %s\n", as_run_prints(*d).c_str());
  }
}

// `luad cluster`: the nodes, then which node owns each unfinished durable run.
void print_cluster(const json::object& c, const json::array& runs) {
  std::printf("this daemon is node %s\n\n", text_cell(c, "node").c_str());
  std::printf("%-6s %-20s %-7s %8s %6s %6s %8s  %s\n", "NODE", "HOST", "STATE", "LEASE", "RUNS",
              "LOAD", "CAPACITY", "VERSION");
  for (const auto& n : c.at("nodes").get_array()) {
    const auto& q = n.get_object();
    const char* state = q.at("left").get_bool()   ? "left"
                        : q.at("live").get_bool() ? "live"
                                                  : "lapsed";
    std::printf("%-6s %-20s %-7s %7.1fs %6s %6s %8s  %s\n", text_cell(q, "node").c_str(),
                cell(q, "host").c_str(), state, q.at("lease_left").to_number<double>(),
                text_cell(q, "runs").c_str(), text_cell(q, "load").c_str(),
                text_cell(q, "capacity").c_str(), cell(q, "version").c_str());
  }
  bool header = false;
  for (const auto& r : runs) {
    const auto& q = r.get_object();
    std::string state = cell(q, "state");
    if (state == "completed" || state == "failed" || state == "terminated") continue;
    if (!header) {
      std::printf("\n%-24s %-10s %-6s %s\n", "RUN", "STATE", "NODE", "SCRIPT");
      header = true;
    }
    std::printf("%-24s %-10s %-6s %s\n", cell(q, "run").c_str(), state.c_str(),
                q.contains("node") ? text_cell(q, "node").c_str() : "-", cell(q, "script").c_str());
  }
}

// A run's journal, a step a line: step, command, state, args => result.
void print_history(const json::object& h) {
  std::printf("run %s (%s)\n", cell(h, "run").c_str(), cell(h, "state").c_str());
  std::printf("%5s %-15s %-8s %-24s %s\n", "STEP", "COMMAND", "STATE", "AT", "ARGS => RESULT");
  for (const auto& e : h.at("steps").get_array()) {
    const auto& q = e.get_object();
    double at = q.at("at").to_number<double>();
    std::time_t secs = static_cast<std::time_t>(at);
    std::tm tm{};
    gmtime_r(&secs, &tm);
    char when[32];
    std::strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    bool failed = q.at("failed").as_bool();
    std::printf("%5s %-15s %-8s %-24s %s => %s%s\n", text_cell(q, "step").c_str(),
                cell(q, "command").c_str(), cell(q, "state").c_str(), when,
                text_cell(q, "args").c_str(), failed ? "error " : "",
                text_cell(q, "result").c_str());
  }
}

int exit_code_of(const json::object& exit) {
  auto reason = exit.if_contains("reason");
  std::string r = reason && reason->is_string() ? std::string(reason->get_string()) : "";
  if (r == "normal") return 0;
  if (r == "limit") return 3;
  if (r == "killed" || r == "shutdown") return 4;
  return 1;
}

// An exit as `luad run` prints it: each result on a line of stdout, or the
// whole exit (every field the daemon sent) on stderr; --json: the raw exit.
void print_exit(const json::object& exit, bool as_json) {
  if (as_json) {
    std::cout << json::serialize(exit) << '\n';
    return;
  }
  if (exit_code_of(exit) == 0) {
    if (const auto* results = exit.if_contains("results"); results && results->is_array())
      for (const auto& r : results->get_array()) std::cout << as_run_prints(r) << '\n';
    return;
  }
  std::cerr << as_run_prints(exit) << '\n';
}

// "key: value" lines; nested objects as "outer.inner: value".
// A figure as people read it: a fraction to at most three decimals (not
// Boost.JSON's 2.3735197625E1), bytes with their MiB beside them.
std::string readable(std::string_view key, const json::value& v) {
  if (v.is_string()) return std::string(v.get_string());
  if (v.is_double()) {
    double x = v.get_double();
    if (!std::isfinite(x) || std::fabs(x) >= 1e15) return json::serialize(v);
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.3f", x);
    std::string out = buf;
    while (out.back() == '0') out.pop_back();
    if (out.back() == '.') out.pop_back();
    return out == "-0" ? "0" : out;
  }
  std::string out = json::serialize(v);
  if ((key.ends_with("bytes") || key.ends_with("_size")) && v.is_number()) {
    double n = v.to_number<double>();
    if (n >= 1024.0 * 1024.0) {
      char buf[48];
      std::snprintf(buf, sizeof buf, " (%.1f MiB)", n / (1024.0 * 1024.0));
      out += buf;
    }
  }
  return out;
}

// Seconds as people read a latency: "250 µs", "2.5 ms", "1.2 s".
std::string duration_text(double s) {
  char buf[32];
  if (s < 0.001)
    std::snprintf(buf, sizeof buf, "%.0f µs", s * 1e6);
  else if (s < 1)
    std::snprintf(buf, sizeof buf, "%.3g ms", s * 1e3);
  else
    std::snprintf(buf, sizeof buf, "%.3g s", s);
  return buf;
}

// A latency histogram of the stats ({count, sum, buckets}) on one line:
// "120, mean 1.3 ms, 50% <= 2.5 ms, 99% <= 10 ms" (the bounds of buckets).
std::string histogram_line(const json::object& h) {
  double count = h.at("count").to_number<double>();
  if (count == 0) return "0";
  std::string out = readable("", h.at("count")) + ", mean " +
                    duration_text(h.at("sum").to_number<double>() / count);
  for (double q : {0.5, 0.99}) {
    for (const auto& [le, n] : h.at("buckets").get_object()) {
      if (n.to_number<double>() < q * count) continue;
      out += ", " + std::to_string(static_cast<int>(q * 100)) + "% <= ";
      out += le == "+Inf" ? std::string("more") : duration_text(std::stod(std::string(le)));
      break;
    }
  }
  return out;
}

bool is_histogram(const json::value& v) {
  return v.is_object() && v.get_object().contains("buckets") && v.get_object().contains("count");
}

void print_fields(const json::object& o, const std::string& prefix) {
  for (const auto& [k, v] : o) {
    std::string key = prefix + std::string(k);
    if (is_histogram(v)) {
      std::cout << key << ": " << histogram_line(v.get_object()) << '\n';
      continue;
    }
    if (v.is_object() && !v.get_object().empty()) {
      print_fields(v.get_object(), key + ".");
      continue;
    }
    std::cout << key << ": " << readable(key, v) << '\n';
  }
}

// "2026-11-22T10:00:00.000Z info  message {"k":1}" for a `log` notification.
void print_log_line(const json::object& line, bool as_json) {
  if (as_json) {
    std::cout << json::serialize(line) << std::endl;
    return;
  }
  std::string text = cell(line, "time") + " " + cell(line, "level");
  text.resize(std::max<std::size_t>(text.size(), 30), ' ');
  text += cell(line, "message");
  if (const json::value* f = line.if_contains("fields")) text += " " + json::serialize(*f);
  std::cout << text << std::endl;  // flushed: a follower is often piped
}

// `luad logs PID`: the process's recent lines, then (unless --no-follow) new
// ones as they are logged, until it exits.
int follow_logs(const client_request& req, const std::string& socket) {
  rpc_connection conn(socket);
  json::object params{{"pid", req.pid}, {"logs", true}};
  if (!req.level.empty()) params["level"] = req.level;
  json::object reply = conn.reply_to(conn.request("subscribe", std::move(params)));
  if (const auto* err = reply.if_contains("error")) {
    std::cerr << "luad logs: " << error_text(*err) << '\n';
    return 1;
  }
  const json::object& result = reply.at("result").get_object();
  for (const auto& line : result.at("backlog").get_array())
    print_log_line(line.get_object(), req.json);
  auto print_end = [&](const json::object& exit) {
    if (req.json) {
      std::cout << json::serialize(json::object{{"exit", exit}}) << std::endl;
    } else {
      std::cout << "-- " << req.pid << " exited: " << cell(exit, "reason");
      if (exit.contains("message")) std::cout << ": " << cell(exit, "message");
      std::cout << std::endl;
    }
  };
  if (const auto* exit = result.if_contains("exit")) {
    print_end(exit->get_object());
    return 0;
  }
  if (!req.follow) return 0;
  for (;;) {
    json::object note = conn.next();
    std::string method = cell(note, "method");
    const json::value* p = note.if_contains("params");
    if (!p || !p->is_object()) continue;
    if (method == "log") {
      print_log_line(p->get_object(), req.json);
    } else if (method == "dropped") {
      std::cerr << "luad logs: " << json::serialize(p->get_object().at("lines"))
                << " lines dropped (this client read too slowly)\n";
    } else if (method == "exit") {
      print_end(p->get_object());
      return 0;
    }
  }
}

}  // namespace

std::string default_socket() {
  if (const char* env = std::getenv("LUAD_SOCKET"); env && *env) return env;
  if (std::filesystem::exists("configs/run/luad.sock")) return "configs/run/luad.sock";
  return "/run/luad/luad.sock";
}

int client_command(const client_request& req) {
  json::object params;
  const std::string& cmd = req.command;
  std::string method = cmd;
  std::string socket = req.socket.empty() ? default_socket() : req.socket;
  if (cmd == "logs") {
    try {
      return follow_logs(req, socket);
    } catch (const std::exception& e) {
      std::cerr << "luad logs: " << e.what() << '\n';
      return 5;
    }
  }
  if (cmd == "submit") {
    std::ifstream in(req.file, std::ios::binary);
    if (!in) {
      std::cerr << "luad submit: cannot read " << req.file << '\n';
      return 2;
    }
    std::ostringstream text;
    text << in.rdbuf();
    method = "spawn";
    params["source"] = text.str();
    params["name"] = std::filesystem::path(req.file).filename().string();
    json::array args;
    for (const auto& a : req.args) args.push_back(json::string(a));
    params["args"] = std::move(args);
    if (!req.profile.empty()) params["profile"] = req.profile;
    if (req.wait) params["wait"] = true;
    if (req.durable) params["durable"] = true;
    json::object limits;
    if (req.memory) limits["memory"] = req.memory;
    if (req.instructions) limits["instructions"] = req.instructions;
    if (!limits.empty()) params["limits"] = std::move(limits);
  } else if (cmd == "ps") {
    method = "list";
    if (!req.status.empty()) params["status"] = req.status;
    if (!req.workflow.empty()) params["workflow"] = req.workflow;
  } else if (cmd == "send" || cmd == "cancel") {
    params["to"] = req.pid;
    if (cmd == "send") {
      params["topic"] = req.topic;
      boost::system::error_code ec;
      json::value payload = json::parse(req.payload, ec);
      if (ec) {
        std::cerr << "luad send: the payload is not JSON: " << ec.message() << '\n';
        return 2;
      }
      params["payload"] = std::move(payload);
    } else if (!req.reason.empty()) {
      params["reason"] = req.reason;
    }
  } else if (cmd == "reload") {
    if (!req.file.empty())
      params["path"] =
          std::filesystem::weakly_canonical(std::filesystem::absolute(req.file)).string();
  } else if (cmd == "workflows" && is_run_action(req.action)) {
    if (req.name.empty()) {
      std::cerr << "luad workflows " << req.action << ": give the run id\n";
      return 2;
    }
    method = "run_" + req.action;
    params["run"] = req.name;
  } else if (cmd == "workflows") {
    if (!req.action.empty()) {
      params["action"] = req.action;
      params["name"] = req.name;
    }
  } else if (cmd == "info" || cmd == "kill") {
    if (cmd == "kill" && !req.owner.empty()) {
      params["owner"] = req.owner;
    } else {
      params["pid"] = req.pid;
    }
    if (cmd == "kill" && !req.reason.empty()) params["reason"] = req.reason;
  }
  json::object o;
  try {
    o = call_daemon(socket, method, std::move(params));
  } catch (const std::exception& e) {
    std::cerr << "luad " << cmd << ": " << e.what() << '\n';
    return 5;
  }
  if (const auto* err = o.if_contains("error")) {
    std::cerr << "luad " << cmd << ": " << error_text(*err) << '\n';
    return 1;
  }
  const json::value& result = o.at("result");
  if (cmd == "stats" && req.format == "prometheus") {
    if (!result.is_object()) {
      std::cerr << "luad stats: the daemon sent something that is not a stats document\n";
      return 5;
    }
    std::cout << prometheus_text(result.get_object());
    return 0;
  }
  if ((req.json || (cmd == "stats" && req.format == "json")) && !(cmd == "submit" && req.wait)) {
    std::cout << json::serialize(result) << '\n';
    return 0;
  }
  if (cmd == "submit") {
    if (result.is_object() && result.get_object().contains("queued")) {  // (a full cluster node)
      std::cout << "run " << cell(result.get_object(), "run")
                << " queued: the next node of the cluster with room takes it\n";
      return 0;
    }
    if (req.wait) {
      print_exit(result.get_object(), req.json);
      return exit_code_of(result.get_object());
    }
    if (req.durable) std::cout << "run " << cell(result.get_object(), "run") << " pid ";
    std::cout << json::value_to<std::string>(result.at("pid")) << '\n';
  } else if (cmd == "ps") {
    std::printf("%-12s %-10s %-13s %10s %8s  %s\n", "PID", "STATUS", "WAITING ON", "MEMORY", "CPU",
                "SCRIPT");
    for (const auto& p : result.get_array()) {
      const auto& q = p.get_object();
      const json::value* cpu = q.if_contains("cpu");
      std::printf("%-12s %-10s %-13s %10lld %8.3f  %s\n", cell(q, "pid").c_str(),
                  cell(q, "status").c_str(), cell(q, "waiting_on").c_str(),
                  static_cast<long long>(q.at("memory").to_number<double>()),
                  cpu ? cpu->to_number<double>() : 0.0, cell(q, "script").c_str());
    }
  } else if (cmd == "workflows" && req.action == "history") {
    print_history(result.get_object());
  } else if (cmd == "workflows" && req.action == "resume") {
    std::cout << "resumed " << req.name << " as " << cell(result.get_object(), "pid") << '\n';
  } else if (cmd == "workflows" && req.action == "terminate") {
    std::cout << "terminated " << req.name << '\n';
  } else if (cmd == "workflows") {
    print_workflows(result.get_array());
    // Then the durable runs (a daemon with no data directory has none).
    try {
      json::object runs = call_daemon(socket, "runs", {});
      if (const json::value* r = runs.if_contains("result"); r && r->is_array())
        print_runs(r->get_array());
    } catch (const std::exception&) {
    }
  } else if (cmd == "cluster") {
    json::array runs;
    try {
      json::object r = call_daemon(socket, "runs", {});
      if (const json::value* v = r.if_contains("result"); v && v->is_array()) runs = v->get_array();
    } catch (const std::exception&) {
    }
    print_cluster(result.get_object(), runs);
  } else if (cmd == "info" || cmd == "stats") {
    print_fields(result.get_object(), "");
  } else if (cmd == "reload") {
    const auto& r = result.get_object();
    const auto& code = r.at("code").get_object();
    for (const char* what : {"restarting", "not_compiling"}) {
      std::cout << "code " << what << ":";
      for (const auto& n : code.at(what).get_array()) std::cout << ' ' << n.get_string();
      std::cout << '\n';
    }
    if (!req.file.empty()) return 0;
    for (const char* what : {"added", "removed", "changed", "unchanged"}) {
      std::cout << what << ":";
      for (const auto& n : r.at(what).get_array()) std::cout << ' ' << n.get_string();
      std::cout << '\n';
    }
    if (r.at("restart_needed").get_bool())
      std::cout << "note: [server], [storage], [metrics], [cluster] or limits.max_processes "
                   "changed; they "
                   "take effect at the next start\n";
  } else if (cmd == "kill") {
    if (req.owner.empty()) {
      std::cout << "killed " << req.pid << '\n';
    } else {
      std::cout << "killed " << result.at("killed").to_number<std::int64_t>() << " processes of "
                << req.owner << '\n';
    }
  } else if (cmd == "send" || cmd == "cancel") {
    std::cout << (cmd == "send" ? "sent to " : "canceled ") << req.pid << '\n';
  } else {
    std::cout << (result.is_string() ? std::string(result.get_string()) : json::serialize(result))
              << '\n';
  }
  return 0;
}

}  // namespace luad::server
