// Reading the daemon's TOML config strictly: every table is read through a
// `section` that remembers which keys were used, and a key nobody used is an
// error with its line, like a wrong type or a bad value.
#include "server/config.hpp"

#include <arpa/inet.h>
#include <toml++/toml.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "dispatcher/pg_conninfo.hpp"
#include "runtime/permissions.hpp"
#include "server/schedule.hpp"

namespace luad::server {

namespace {

namespace fs = std::filesystem;

[[noreturn]] void fail(const std::string& file, const toml::source_region& where,
                       const std::string& key, const std::string& why) {
  std::ostringstream out;
  out << file;
  if (where.begin.line) out << ':' << where.begin.line << ':' << where.begin.column;
  out << ": " << key << ": " << why;
  throw config_error(out.str());
}

// One TOML table being read. `prefix` names it in messages ("workflow[2].").
class section {
 public:
  section(const std::string& file, const toml::table& t, std::string prefix)
      : file_(file), table_(t), prefix_(std::move(prefix)) {}

  // Fails on keys that no read asked for (typos, keys of another section).
  void finish() const {
    for (const auto& [k, node] : table_) {
      std::string key(k.str());
      if (!used_.count(key)) {
        fail(file_, node.source(), prefix_ + key,
             "unknown key" + (hint_.empty() ? std::string() : " (known: " + hint_ + ")"));
      }
    }
  }

  const toml::node* get(const char* key) {
    used_.insert(key);
    if (!hint_.empty()) hint_ += ", ";
    hint_ += key;
    return table_.get(key);
  }

  std::string name(const char* key) const { return prefix_ + key; }
  const std::string& file() const { return file_; }
  [[noreturn]] void bad(const toml::node& n, const char* key, const std::string& why) const {
    fail(file_, n.source(), name(key), why);
  }

  void text(const char* key, std::string& out, std::initializer_list<const char*> allowed = {}) {
    const toml::node* n = get(key);
    if (!n) return;
    const auto* s = n->as_string();
    if (!s) bad(*n, key, "expected a string");
    std::string v = s->get();
    if (allowed.size() &&
        std::none_of(allowed.begin(), allowed.end(), [&](const char* a) { return v == a; })) {
      std::string list;
      for (const char* a : allowed) list += std::string(list.empty() ? "" : ", ") + a;
      bad(*n, key, "'" + v + "' is not one of " + list);
    }
    out = std::move(v);
  }

  void boolean(const char* key, bool& out) {
    const toml::node* n = get(key);
    if (!n) return;
    const auto* b = n->as_boolean();
    if (!b) bad(*n, key, "expected true or false");
    out = b->get();
  }

  template <class Int>
  void integer(const char* key, Int& out, std::int64_t lo, std::int64_t hi) {
    const toml::node* n = get(key);
    if (!n) return;
    const auto* i = n->as_integer();
    if (!i) bad(*n, key, "expected an integer");
    std::int64_t v = i->get();
    if (v < lo || v > hi) {
      bad(*n, key,
          std::to_string(v) + " is out of range " + std::to_string(lo) + ".." + std::to_string(hi));
    }
    out = static_cast<Int>(v);
  }

  void seconds(const char* key, double& out, double lo, double hi) {
    const toml::node* n = get(key);
    if (!n) return;
    double v;
    if (const auto* f = n->as_floating_point())
      v = f->get();
    else if (const auto* i = n->as_integer())
      v = static_cast<double>(i->get());
    else
      bad(*n, key, "expected a number of seconds");
    if (!(v >= lo && v <= hi)) {
      bad(*n, key,
          "must be between " + std::to_string(lo) + " and " + std::to_string(hi) + " seconds");
    }
    out = v;
  }

  // "64MiB", "512k" or a plain integer of bytes.
  void size(const char* key, std::size_t& out) {
    const toml::node* n = get(key);
    if (!n) return;
    if (const auto* i = n->as_integer()) {
      if (i->get() < 0) bad(*n, key, "must not be negative");
      out = static_cast<std::size_t>(i->get());
    } else if (const auto* s = n->as_string()) {
      if (!parse_size(s->get(), out))
        bad(*n, key, "cannot read size '" + s->get() + "' (try \"64MiB\")");
    } else {
      bad(*n, key, "expected a size (\"64MiB\" or an integer of bytes)");
    }
  }

  void strings(const char* key, std::vector<std::string>& out) {
    const toml::node* n = get(key);
    if (!n) return;
    const auto* a = n->as_array();
    if (!a) bad(*n, key, "expected an array of strings");
    out.clear();
    for (const auto& e : *a) {
      const auto* s = e.as_string();
      if (!s) fail(file_, e.source(), name(key), "expected an array of strings");
      out.push_back(s->get());
    }
  }

  void ids(const char* key, std::vector<std::uint32_t>& out) {
    const toml::node* n = get(key);
    if (!n) return;
    const auto* a = n->as_array();
    if (!a) bad(*n, key, "expected an array of numeric ids");
    out.clear();
    for (const auto& e : *a) {
      const auto* i = e.as_integer();
      if (!i || i->get() < 0 || i->get() > 0xFFFFFFFFll)
        fail(file_, e.source(), name(key), "expected an array of numeric ids");
      out.push_back(static_cast<std::uint32_t>(i->get()));
    }
  }

  void permissions(const char* key, runtime::permission_list& out) {
    strings(key, out);
    if (const toml::node* n = table_.get(key)) {
      for (const std::string& p : out) {
        std::string why = runtime::check_permission(p);
        if (!why.empty()) bad(*n, key, why);
      }
    }
  }

  // A list of owners ("uid:N", "workflow:NAME" or "*"); with `flag`, also
  // true (everyone: ["*"]) or false (nobody).
  void owners(const char* key, std::vector<std::string>& out, bool flag) {
    const toml::node* n = get(key);
    if (!n) return;
    if (const auto* b = n->as_boolean(); b && flag) {
      out = b->get() ? std::vector<std::string>{"*"} : std::vector<std::string>{};
      return;
    }
    const auto* a = n->as_array();
    if (!a)
      bad(*n, key,
          flag ? "expected true, false or an array of owners" : "expected an array of owners");
    out.clear();
    for (const auto& e : *a) {
      const auto* s = e.as_string();
      if (!s || !(s->get() == "*" || runtime::valid_owner(s->get())))
        fail(file_, e.source(), name(key),
             "expected owners: \"uid:N\", \"workflow:NAME\" or \"*\"");
      out.push_back(s->get());
    }
  }

  // "all", "workflow" or a list of class names.
  void classes(const char* key, runtime::class_set& out) {
    const toml::node* n = get(key);
    if (!n) return;
    static const std::pair<const char*, runtime::class_set> names[] = {
        {"deterministic", runtime::deterministic},
        {"nondeterministic", runtime::nondeterministic},
        {"io", runtime::io},
        {"network", runtime::network},
        {"storage", runtime::storage},
        {"workflow", runtime::workflow}};
    auto one = [&](const std::string& v, const toml::node& at) -> runtime::class_set {
      for (const auto& [nm, c] : names)
        if (v == nm) return c;
      fail(file_, at.source(), name(key),
           "unknown class '" + v +
               "' (known: deterministic, nondeterministic, io, network, storage, workflow)");
    };
    if (const auto* s = n->as_string()) {
      if (s->get() == "all")
        out = runtime::all_classes;
      else if (s->get() == "workflow")
        out = runtime::workflow_classes;
      else
        out = one(s->get(), *n);
      return;
    }
    const auto* a = n->as_array();
    if (!a) bad(*n, key, "expected \"all\", \"workflow\" or an array of class names");
    out = 0;
    for (const auto& e : *a) {
      const auto* s = e.as_string();
      if (!s) fail(file_, e.source(), name(key), "expected class names");
      out |= one(s->get(), e);
    }
  }

  // A sub-table (absent: an empty one).
  const toml::table* table(const char* key) {
    const toml::node* n = get(key);
    if (!n) return nullptr;
    const auto* t = n->as_table();
    if (!t) bad(*n, key, "expected a table");
    return t;
  }
  // An array of tables ([[workflow]]).
  const toml::array* tables(const char* key) {
    const toml::node* n = get(key);
    if (!n) return nullptr;
    const auto* a = n->as_array();
    if (!a || !a->is_array_of_tables())
      bad(*n, key, "expected [[" + std::string(key) + "]] tables");
    return a;
  }

 private:
  const std::string& file_;
  const toml::table& table_;
  std::string prefix_;
  std::set<std::string> used_;
  std::string hint_;
};

void read_process_limits(section& s, runtime::limits& l) {
  s.size("memory", l.memory);
  s.integer("instructions", l.instructions, 0, INT64_MAX);
  s.seconds("cpu", l.cpu, 0, 1e9);
  // Deprecated (issue 12): turns are timed now, see [server] time_slice. Still
  // read, so that older configs load; the value is ignored.
  std::uint32_t turn = 10000;
  s.integer("turn", turn, 100, 100'000'000);
  s.size("mailbox", l.mailbox);
  s.size("message_size", l.message_bytes);
  s.size("mailbox_size", l.mailbox_bytes);
  s.size("exit_size", l.exit_bytes);
  s.size("timers", l.timers);
  s.size("timer_size", l.timer_bytes);
}

// Gives the store namespaces in `perms` the quota `bytes` (0: none set); two
// different quotas for one namespace are an error, not a silent choice.
void add_quota(storage_config& st, const runtime::permission_list& perms, std::size_t bytes,
               const std::string& file, const toml::table& at, const std::string& key) {
  if (bytes == 0) return;
  for (const std::string& p : perms) {
    if (!p.starts_with("store:")) continue;
    auto [it, fresh] = st.namespace_quotas.emplace(p.substr(6), bytes);
    if (!fresh && it->second != bytes) {
      fail(file, at.source(), key,
           "store namespace '" + it->first + "' already has store_bytes " +
               std::to_string(it->second) + " from another profile or workflow");
    }
  }
}

// `durable`, `schedule` and `catchup`: the schedule must parse and fire, and
// implies durable runs; `catchup` means nothing without a schedule.
void read_schedule(section& s, const toml::table& t, workflow_config& w) {
  s.boolean("durable", w.durable);
  s.text("schedule", w.schedule);
  s.text("catchup", w.catchup, {"one", "all", "none"});
  if (const toml::node* n = t.get("schedule")) {
    auto parsed = schedule::parse(w.schedule);
    if (!parsed) s.bad(*n, "schedule", parsed.error().message);
    if (!parsed->fires()) {
      s.bad(*n, "schedule",
            "schedule \"" + w.schedule + "\" never fires: none of its months has any of its days");
    }
    if (const toml::node* d = t.get("durable"); d && !w.durable) {
      s.bad(*d, "durable",
            "a workflow with a schedule runs durably; remove `durable = false` or the schedule");
    }
    w.durable = true;
  } else if (const toml::node* c = t.get("catchup")) {
    s.bad(*c, "catchup", "needs a schedule (it says which missed ticks of the schedule run)");
  }
}

// [storage]'s PostgreSQL keys: a URL libpq can read, without a password,
// and at most one place the password comes from.
void check_postgres(section& s, const toml::table& t, const storage_config& c) {
  const toml::node* url = t.get("url");
  const toml::node& at = url ? *url : static_cast<const toml::node&>(t);
  if (c.backend != "postgres") {
    if (url) s.bad(*url, "url", "is only read with backend = \"postgres\"");
    return;
  }
  if (c.url.empty()) s.bad(at, "url", "backend = \"postgres\" needs the server's url");
  if (auto why = dispatcher::pg_conninfo_error(c.url)) s.bad(at, "url", *why);
  if (dispatcher::pg_conninfo_has_password(c.url)) {
    s.bad(at, "url",
          "holds a password: give it through password_env or password_file instead, so that"
          " the config holds no secret");
  }
  if (!c.password_env.empty() && !c.password_file.empty())
    s.bad(*t.get("password_file"), "password_file", "give password_env or password_file, not both");
}

std::string absolute_from(const fs::path& base, const std::string& p) {
  fs::path path(p);
  return (path.is_absolute() ? path : base / path).lexically_normal().string();
}

}  // namespace

config parse_config(std::string_view text, const std::string& path) {
  toml::table root;
  try {
    root = toml::parse(text, path);
  } catch (const toml::parse_error& e) {
    fail(path, e.source(), "syntax", std::string(e.description()));
  }
  config c;
  c.path = path;
  fs::path base = fs::path(path).parent_path();
  if (base.empty()) base = ".";
  base = fs::absolute(base);

  section top(path, root, "");
  if (const auto* t = top.table("server")) {
    section s(path, *t, "server.");
    s.text("socket", c.server.socket);
    if (const toml::node* n = s.get("socket_mode")) {
      std::int64_t mode = -1;
      if (const auto* i = n->as_integer()) mode = i->get();
      if (const auto* str = n->as_string()) {
        try {
          std::size_t used = 0;
          mode = std::stoll(str->get(), &used, 8);
          if (used != str->get().size()) mode = -1;
        } catch (const std::exception&) {
          mode = -1;
        }
      }
      if (mode < 0 || mode > 0777) s.bad(*n, "socket_mode", "expected an octal mode like \"0660\"");
      c.server.socket_mode = static_cast<std::uint32_t>(mode);
    }
    s.ids("allow_uids", c.server.allow_uids);
    s.ids("allow_gids", c.server.allow_gids);
    s.integer("workers", c.server.workers, 0, 1024);
    s.text("log_level", c.server.log_level, {"debug", "info", "warn", "error"});
    s.text("log_format", c.server.log_format, {"text", "json"});
    s.seconds("grace_period", c.server.grace_period, 0, 3600);
    s.seconds("time_slice", c.server.time_slice, 0.0001, 1);
    s.finish();
  }
  if (!c.server.socket.empty()) c.server.socket = absolute_from(base, c.server.socket);

  if (const auto* t = top.table("storage")) {
    section s(path, *t, "storage.");
    s.text("backend", c.storage.backend, {"sqlite", "postgres"});
    s.text("data_dir", c.storage.data_dir);
    s.size("namespace_bytes", c.storage.namespace_bytes);
    s.text("url", c.storage.url);
    s.text("password_env", c.storage.password_env);
    s.text("password_file", c.storage.password_file);
    s.integer("pool_size", c.storage.pool_size, 2, 64);
    s.seconds("statement_timeout", c.storage.statement_timeout, 0.01, 3600);
    check_postgres(s, *t, c.storage);
    s.finish();
  }
  c.storage.data_dir = absolute_from(base, c.storage.data_dir);
  if (!c.storage.password_file.empty())
    c.storage.password_file = absolute_from(base, c.storage.password_file);

  if (const auto* t = top.table("limits")) {
    section s(path, *t, "limits.");
    read_process_limits(s, c.limits.process);
    s.size("max_processes", c.limits.max_processes);
    s.size("max_connections", c.limits.max_connections);
    s.size("max_request_size", c.limits.max_request_bytes);
    s.size("remembered_exits", c.limits.remembered_exits);
    s.size("remembered_exits_size", c.limits.remembered_exit_bytes);
    s.size("log_backlog", c.limits.log_backlog);
    s.size("log_backlog_size", c.limits.log_backlog_bytes);
    s.size("source", c.limits.source_bytes);
    s.integer("pattern_steps", c.limits.pattern_steps, 1000, std::int64_t{1} << 50);
    s.integer("journal_steps", c.limits.journal_steps, 0, std::int64_t{1} << 40);
    s.size("connections_per_uid", c.limits.connections_per_uid);
    s.seconds("idle_timeout", c.limits.idle_timeout, 0.01, 86400);
    s.seconds("request_timeout", c.limits.request_timeout, 0.01, 3600);
    if (c.limits.max_connections < 1)
      fail(path, t->source(), "limits.max_connections", "must be at least 1");
    if (c.limits.connections_per_uid > c.limits.max_connections)
      fail(path, t->source(), "limits.connections_per_uid", "must not exceed max_connections");
    s.finish();
  }

  if (const auto* t = top.table("scripts")) {
    section s(path, *t, "scripts.");
    s.strings("roots", c.script_roots);
    s.boolean("watch", c.scripts.watch);
    s.size("cache_size", c.scripts.cache_bytes);
    s.finish();
    for (std::string& r : c.script_roots) r = absolute_from(base, r);
  }

  if (const auto* t = top.table("metrics")) {
    section s(path, *t, "metrics.");
    s.text("listen", c.metrics.listen);
    std::string why;
    const toml::node* n = t->get("listen");
    if (n && !c.metrics.listen.empty() &&
        !parse_listen(c.metrics.listen, c.metrics.address, c.metrics.port, why))
      s.bad(*n, "listen", why);
    s.finish();
  }

  if (const auto* t = top.table("cluster")) {
    section s(path, *t, "cluster.");
    s.integer("node", c.cluster.node, 1, 65535);
    s.seconds("lease", c.cluster.lease, 0.5, 3600);
    s.size("max_runs", c.cluster.max_runs);
    s.size("max_mail", c.cluster.max_mail);
    if (c.cluster.max_mail == 0) s.bad(*t->get("max_mail"), "max_mail", "must be at least 1");
    if (c.storage.backend != "postgres")
      fail(path, t->source(), "cluster", "needs [storage] backend = \"postgres\"");
    s.finish();
  }

  if (const auto* a = top.tables("profile")) {
    std::set<std::string> seen;
    for (std::size_t i = 0; i < a->size(); ++i) {
      const auto& t = *a->get(i)->as_table();
      section s(path, t, "profile[" + std::to_string(i + 1) + "].");
      profile_config p;
      s.text("name", p.name);
      if (p.name.empty()) fail(path, t.source(), s.name("name"), "every profile needs a name");
      if (!seen.insert(p.name).second)
        fail(path, t.source(), s.name("name"), "profile '" + p.name + "' is defined twice");
      s.permissions("permissions", p.permissions);
      s.ids("uids", p.uids);
      s.ids("gids", p.gids);
      if (const auto* qt = s.table("quotas")) {
        section qs(path, *qt, s.name("quotas."));
        qs.size("processes", p.quotas.processes);
        qs.size("memory", p.quotas.memory);
        qs.size("timers", p.quotas.timers);
        qs.finish();
      }
      s.size("store_bytes", p.store_bytes);
      add_quota(c.storage, p.permissions, p.store_bytes, path, t, s.name("store_bytes"));
      s.finish();
      c.profiles.push_back(std::move(p));
    }
  }

  if (const auto* a = top.tables("workflow")) {
    std::set<std::string> seen;
    for (std::size_t i = 0; i < a->size(); ++i) {
      const auto& t = *a->get(i)->as_table();
      section s(path, t, "workflow[" + std::to_string(i + 1) + "].");
      workflow_config w;
      w.limits = c.limits.process;
      s.text("name", w.name);
      if (w.name.empty()) fail(path, t.source(), s.name("name"), "every workflow needs a name");
      if (!seen.insert(w.name).second)
        fail(path, t.source(), s.name("name"), "workflow '" + w.name + "' is defined twice");
      s.text("script", w.script);
      if (w.script.empty())
        fail(path, t.source(), s.name("script"), "every workflow needs a script");
      w.script = absolute_from(base, w.script);
      s.strings("args", w.args);
      s.text("start", w.start, {"boot", "manual"});
      s.text("restart", w.restart, {"permanent", "transient", "temporary"});
      s.text("reload", w.reload, {"none", "restart"});
      s.seconds("reload_trial", w.reload_trial, 0, 86400);
      s.seconds("backoff", w.backoff_initial, 0, 3600);
      s.seconds("backoff_max", w.backoff_max, 0, 86400);
      s.integer("intensity", w.intensity, 0, 1'000'000);
      s.seconds("period", w.period, 0.001, 86400);
      s.permissions("permissions", w.permissions);
      s.owners("reachable", w.reachable, true);
      s.owners("controllers", w.controllers, false);
      s.classes("classes", w.classes);
      s.size("store_bytes", w.store_bytes);
      add_quota(c.storage, w.permissions, w.store_bytes, path, t, s.name("store_bytes"));
      read_schedule(s, t, w);
      if (const auto* lt = s.table("limits")) {
        section ls(path, *lt, s.name("limits."));
        read_process_limits(ls, w.limits);
        ls.finish();
      }
      s.finish();
      c.workflows.push_back(std::move(w));
    }
  }
  top.finish();
  return c;
}

bool parse_size(const std::string& text, std::size_t& out) {
  std::size_t i = 0;
  unsigned long long n = 0;
  while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) {
    auto digit = static_cast<unsigned>(text[i++] - '0');
    if (n > ((~0ull) - digit) / 10) return false;
    n = n * 10 + digit;
  }
  if (i == 0) return false;
  std::string unit = text.substr(i);
  for (char& c : unit) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  unsigned long long mul;
  if (unit.empty() || unit == "b")
    mul = 1;
  else if (unit == "k" || unit == "kb" || unit == "kib")
    mul = 1ull << 10;
  else if (unit == "m" || unit == "mb" || unit == "mib")
    mul = 1ull << 20;
  else if (unit == "g" || unit == "gb" || unit == "gib")
    mul = 1ull << 30;
  else
    return false;
  if (n > (~0ull) / mul) return false;
  out = static_cast<std::size_t>(n * mul);
  return true;
}

bool parse_listen(const std::string& text, std::string& address, std::uint16_t& port,
                  std::string& why) {
  why = R"(expected "HOST:PORT" with HOST an IP address ("127.0.0.1:9464", "[::1]:9464"), not ')" +
        text + "'";
  std::size_t colon = text.rfind(':');
  if (colon == std::string::npos || colon + 1 == text.size() || text.size() - colon > 6)
    return false;
  std::string host = text.substr(0, colon), digits = text.substr(colon + 1);
  if (!std::all_of(digits.begin(), digits.end(), [](unsigned char c) { return std::isdigit(c); }))
    return false;
  unsigned long number = std::stoul(digits);
  if (number > 65535) {
    why = "port " + digits + " is out of range 0..65535";
    return false;
  }
  bool bracketed = host.size() > 2 && host.front() == '[' && host.back() == ']';
  if (bracketed) host = host.substr(1, host.size() - 2);
  unsigned char ip[16];
  if (::inet_pton(bracketed ? AF_INET6 : AF_INET, host.c_str(), ip) != 1) return false;
  address = std::move(host);
  port = static_cast<std::uint16_t>(number);
  why.clear();
  return true;
}

std::size_t connection_share(const limits_config& l) {
  if (l.connections_per_uid > 0) return l.connections_per_uid;
  return std::min(l.max_connections, std::max<std::size_t>(4, l.max_connections / 4));
}

std::size_t operator_reserve(const limits_config& l) {
  return std::min(l.max_connections, std::max<std::size_t>(1, l.max_connections / 16));
}

config load_config(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw config_error(path + ": cannot read the file");
  std::ostringstream text;
  text << in.rdbuf();
  return parse_config(text.str(), path);
}

}  // namespace luad::server

namespace luad::server {

dispatcher::postgres_options postgres_options_of(const storage_config& c) {
  dispatcher::postgres_options o;
  o.conninfo = c.url;
  o.pool_size = c.pool_size;
  o.statement_timeout =
      std::chrono::milliseconds(static_cast<std::int64_t>(c.statement_timeout * 1000));
  if (!c.password_env.empty()) {
    const char* v = std::getenv(c.password_env.c_str());
    if (!v || !*v) {
      throw std::runtime_error("[storage] password_env: the environment variable " +
                               c.password_env + " is not set");
    }
    o.password = v;
  } else if (!c.password_file.empty()) {
    std::ifstream in(c.password_file);
    std::string line;
    if (!in || !std::getline(in, line)) {
      throw std::runtime_error("[storage] password_file: cannot read " + c.password_file);
    }
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    o.password = std::move(line);
  }
  return o;
}

}  // namespace luad::server
