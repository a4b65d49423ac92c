// The hostile corpus runner: every tests/hostile/scripts/*.lua, two copies at
// once, on a real two-worker daemon (default limits and profile) beside a
// canary whose 10 ms sleeps are timed. For each script it checks the exit its
// header expects, kill latency, that the daemon lives and answers; over the
// run, the canary's lateness, ping round trips and the daemon's RSS.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>
#include <tuple>
#include <vector>

#include "tests/hostile/daemon_process.hpp"

// Cases with wall-clock bounds run alone, not beside other tests on the same
// cores (ctest RUN_SERIAL: cmake/doctest_add_tests.cmake).
TEST_SUITE_BEGIN("serial");

namespace {

using namespace luad_hostile;
using luad::test::slurp;

// --- bounds -----------------------------------------------------------------
// The figures hold in an optimised build. Under ASan (+UBSan, -O0, as
// CI runs every test a second time) the daemon's own C++ runs several times
// slower and takes the scheduler's locks longer, so the canary's, ping's and
// kill's timing bounds are relaxed there (to catching stalls); exit reasons,
// liveness and the RSS bound (with ASan's own overhead added) are the same.

/// The canary's 10 ms sleep may wake at most this late, net of the machine's
/// own lateness (the issue: 20 ms). It held only at 40 ms until the watchdog
/// stopped walking deep call chains every slice and hands the queue of a long
/// turn (a deep state, a close) to a spare at once (docs/security.md, "Time").
/// Under ASan (-O0, every access checked) each turn costs ~10 times more, and
/// a spawn bomb's 1,000 runnable processes ahead of the canary in the FIFO
/// queues made it 224 ms late, an exit copy of corpus_dag_result.lua 100 ms:
/// there only a stall is caught.
constexpr double lateness_goal_ms = sanitizer_build ? 60 : 20;
constexpr double lateness_bound_ms = sanitizer_build ? 300 : lateness_goal_ms;
/// `kill` to the reply of `wait`, through the socket (the issue: 100 ms).
/// Under ASan a kill's p99 is 14-52 ms on an idle machine, but CI's loaded
/// 2-core machine once took 232 ms for one of 28 (cwork_load_goto.lua, two
/// copies parsing on both cores): there, too, only a stall is caught.
constexpr double kill_bound_ms = sanitizer_build ? 500 : 100;
/// Any ping round trip during the run (the socket thread is never stalled).
constexpr double ping_bound_ms = sanitizer_build ? 500 : 100;
/// A script not killed by the runner must end by itself within this.
/// TSan runs some scripts ~10x slower, and more where fresh memory is slow:
/// memory_self_flood.lua (600 MB of copies, each with TSan's shadow) took
/// 38 s alone there on 5 Dec, and two copies at once passed 60 s.
constexpr auto exit_bound = tsan_build ? 180s : 10s;
/// How long `kill` scripts run before the runner kills them.
constexpr auto kill_after = 300ms;
/// What the default limits (runtime/limits.hpp, [limits]) let one process make
/// the daemon hold: its Lua heap (memory, 64 MiB), its queued messages
/// (mailbox_size, 64 MiB), its pending timers' payloads (timer_size, 16 MiB)
/// and its exit copy (exit_size, 1 MiB).
constexpr std::size_t memory_limit_kib = (64 + 64 + 16 + 1) * 1024;
/// What the daemon holds beside what its processes are charged for: its
/// code, threads' stacks, allocator slack, the bytecode cache, sockets,
/// remembered exits and logs. Measured: it starts at 13 MiB, and the corpus
/// scripts that stay within their limits peak at 122 MiB (two copies filling
/// 64 MiB heaps); 64 MiB leaves room for another allocator's fragmentation.
constexpr std::size_t rss_constant_kib = 64 * 1024;
/// ASan's own: the daemon starts at ~160 MiB under it (14 without), then its
/// shadow memory (1/8 of what is mapped) and quarantine of freed blocks
/// (capped with quarantine_size_mb for the daemon it starts) grow with the
/// heap: a store flood peaked at 637 MiB once (537 in another run), and on
/// 2 Dec (with libpq linked, two suites at once on CI's two cores) the timer
/// flood peaked at 781 MiB where a quiet run here gave 660. TSan's
/// shadow is several times what is mapped: the corpus peaked at 1.4 GiB under
/// it (4.6 to 17 GiB before runtime/yield.cpp routed Lua's __longjmp_chk to
/// the longjmp TSan unwinds), so its bound only catches a runaway there.
constexpr std::size_t asan_extra_kib = asan_build   ? 384 * 1024
                                       : tsan_build ? std::size_t{8} * 1024 * 1024
                                                    : 0;
/// At most three processes of the corpus run at once (two copies and the
/// canary), each under the default memory limit.
constexpr std::size_t rss_bound_kib = 3 * memory_limit_kib + rss_constant_kib + asan_extra_kib;

/// The corpus runs as an unprivileged uid ("nobody"), through the privileged
/// runner's `as_uid`; the canary runs as the runner (root), another owner.
constexpr std::int64_t k_attacker_uid = 65534;
constexpr const char* k_attacker = "uid:65534";

/// The daemon the corpus runs on: the defaults, but two workers and a
/// script root holding the corpus.
std::string corpus_config() {
  return "[server]\nsocket = \"luad.sock\"\nworkers = 2\ngrace_period = 1\nlog_level = \"warn\"\n"
         "[storage]\ndata_dir = \"data\"\n"
         "[scripts]\nroots = [\"" LUAD_SOURCE_DIR
         "/tests/hostile/scripts\"]\nwatch = false\n"
         "[[profile]]\nname = \"default\"\npermissions = []\n";
}

// --- the corpus -------------------------------------------------------------

struct script_file {
  std::string name;    ///< file name, as `spawn` takes it under the root
  std::string attack;  ///< its `-- attack:` line
  std::string expect;  ///< limit | error | killed | kill | normal | any
};

/// Every script with its header; a script without a valid header fails.
std::vector<script_file> read_corpus() {
  std::vector<script_file> out;
  fs::path dir = fs::path(LUAD_SOURCE_DIR) / "tests" / "hostile" / "scripts";
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().extension() != ".lua") continue;
    std::ifstream in(e.path());
    std::string l1, l2;
    std::getline(in, l1);
    std::getline(in, l2);
    script_file s{e.path().filename().string(), "", ""};
    if (l1.rfind("-- attack: ", 0) == 0) s.attack = l1.substr(11);
    if (l2.rfind("-- expect: ", 0) == 0) s.expect = l2.substr(11);
    CHECK_MESSAGE(!s.attack.empty(), s.name, ": the first line must be '-- attack: ...'");
    static const char* k_expects[] = {"limit", "error", "killed", "kill", "normal", "any"};
    CHECK_MESSAGE(
        std::find(std::begin(k_expects), std::end(k_expects), s.expect) != std::end(k_expects),
        s.name, ": the second line must be '-- expect: limit|error|killed|kill|normal|any'");
    out.push_back(std::move(s));
  }
  std::sort(out.begin(), out.end(), [](auto& a, auto& b) { return a.name < b.name; });
  return out;
}

json::value at(const json::value& v, std::string_view ptr) {
  boost::system::error_code ec;
  const json::value* p = v.find_pointer(ptr, ec);
  return p ? *p : json::value(nullptr);
}
std::string str(const json::value& v) {
  return v.is_string() ? std::string(v.get_string()) : json::serialize(v);
}
double num(const json::value& v) {
  return v.is_double() ? v.get_double() : v.is_int64() ? static_cast<double>(v.get_int64()) : -1;
}

// --- what runs beside the corpus --------------------------------------------

/// Milliseconds on the steady clock, as Lua's time.monotonic() * 1000 reads it
/// in the daemon (both are CLOCK_MONOTONIC).
double now_ms() {
  return std::chrono::duration<double, std::milli>(clock_type::now().time_since_epoch()).count();
}

/// Something seen at a time: an RSS sample (value in KiB) or a ping (value
/// in ms, at the time it was sent).
struct sample {
  double at_ms;
  double value;
};

/// Three threads: one samples the daemon's VmRSS every 5 ms, one pings it
/// every 20 ms over its own connection, and one (the machine probe) sleeps
/// 10 ms in a loop outside the daemon, as the canary does inside it, and
/// records how late it woke: what the OS alone adds on a shared machine. The
/// samples are read once all three stopped.
class observers {
 public:
  explicit observers(daemon_process& d) : d_(d) {
    rss_thread_ = std::thread([this] { sample_rss(); });
    ping_thread_ = std::thread([this] { ping(); });
    probe_thread_ = std::thread([this] { probe(); });
  }
  ~observers() { stop(); }
  void stop() {
    stop_ = true;
    for (std::thread* t : {&rss_thread_, &ping_thread_, &probe_thread_})
      if (t->joinable()) t->join();
  }
  std::vector<sample> rss, pings;
  std::vector<sample> probe_late;  ///< at_ms: the wake; value: ms late (read after stop())

 private:
  void probe() {
    double prev = now_ms();
    while (!stop_) {
      std::this_thread::sleep_for(10ms);
      double now = now_ms();
      probe_late.push_back({now, now - prev - 10});
      prev = now;
    }
  }

  void sample_rss() {
    while (!stop_) {
      rss.push_back({now_ms(), static_cast<double>(d_.rss_kib())});
      std::this_thread::sleep_for(5ms);
    }
  }
  void ping() {
    std::unique_ptr<line_client> c;
    while (!stop_) {
      if (!c || !c->connected()) c = std::make_unique<line_client>(d_.socket());
      double t0 = now_ms();
      json::value r = c->call("ping", {}, 2s);
      pings.push_back({t0, now_ms() - t0});
      if (r.is_null()) c.reset();  // a restart, or a stall (recorded as its duration)
      std::this_thread::sleep_for(20ms);
    }
  }

  daemon_process& d_;
  std::atomic<bool> stop_{false};
  std::thread rss_thread_, ping_thread_, probe_thread_;
};

/// The runner's side of one corpus run: the control connection and the canary.
class corpus_run {
 public:
  explicit corpus_run(daemon_process& d) : d_(d) { connect(); }

  /// Runs one script (two copies); CHECKs what its header promises.
  void run(const script_file& s) {
    double began = now_ms();
    run_copies(s);
    windows.push_back({began, now_ms()});
  }

  /// Stops the canary; returns its report (null if it was lost).
  json::value canary_report() {
    if (!d_.alive()) return nullptr;
    ctl_->request("send", {{"to", canary_}, {"topic", "stop"}, {"payload", "end"}});
    json::value r = ctl_->call("wait", {{"pid", canary_}}, 5s);
    return at(r, "/result/results/0");
  }

  std::vector<std::pair<double, double>> windows;  ///< per script: [begin, end] in ms
  std::vector<double> kill_latencies;
  int restarts = 0;

 private:
  void run_copies(const script_file& s) {
    INFO("script: ", s.name, " (", s.attack, "), expect ", s.expect);
    std::vector<std::string> copies;
    for (bool second : {false, true})
      if (std::string pid = spawn(s.name, second); !pid.empty()) copies.push_back(pid);
    if (copies.empty()) return clean_up();
    if (s.expect == "kill") {
      std::this_thread::sleep_for(kill_after);  // the attack's running time, not a wait
      kill_all(copies);
    } else {
      std::map<std::int64_t, json::value> replies;
      std::vector<std::int64_t> ids;
      for (const auto& pid : copies) ids.push_back(ctl_->request("wait", {{"pid", pid}}));
      collect(replies, ids, exit_bound);
      for (std::int64_t id : ids) {
        json::value r = replies.count(id) ? replies[id] : json::value(nullptr);
        CHECK_MESSAGE(!r.is_null(), "no exit within ", exit_bound.count(), " s");
        if (r.is_null()) continue;
        std::string reason = str(at(r, "/result/reason"));
        INFO("exit: ", json::serialize(r).substr(0, 600));
        if (s.expect != "any") CHECK(reason == s.expect);
        if (s.expect == "any") CHECK(!reason.empty());
      }
    }
    clean_up();
    alive_and_answering(s.name);
  }

  void connect() {
    ctl_ = std::make_unique<line_client>(d_.socket());
    REQUIRE(ctl_->connected());
    json::value r = ctl_->call(
        "spawn", {{"source", slurp(fs::path(LUAD_SOURCE_DIR) / "tests/hostile/canary.lua")},
                  {"name", "canary.lua"}});
    canary_ = str(at(r, "/result/pid"));
    REQUIRE_MESSAGE(!at(r, "/result/pid").is_null(), json::serialize(r));
  }

  // The pid of a new copy of `name`; empty if refused. `quota_may_refuse`:
  // the owner's process quota may refuse it without failing the test (a
  // spawn bomb's first copy can fill the quota before the second is asked for).
  std::string spawn(const std::string& name, bool quota_may_refuse = false) {
    json::value r = ctl_->call("spawn", {{"script", name}, {"as_uid", k_attacker_uid}});
    json::value pid = at(r, "/result/pid");
    bool quota = str(at(r, "/error/message")).find("process quota") != std::string::npos;
    if (!(quota_may_refuse && quota))
      CHECK_MESSAGE(pid.is_string(), "spawn refused: ", json::serialize(r));
    return pid.is_string() ? std::string(pid.get_string()) : std::string();
  }

  // Reads replies into `out` until every id in `ids` has one or `limit` passes.
  void collect(std::map<std::int64_t, json::value>& out, const std::vector<std::int64_t>& ids,
               std::chrono::milliseconds limit,
               std::map<std::int64_t, clock_type::time_point>* when = nullptr) {
    auto end = clock_type::now() + limit;
    auto missing = [&] {
      return std::any_of(ids.begin(), ids.end(), [&](auto id) { return !out.count(id); });
    };
    while (missing()) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - clock_type::now());
      if (left.count() <= 0) return;
      json::value v = ctl_->next(left);
      if (v.is_null()) return;
      const json::value* id = v.as_object().if_contains("id");
      if (!id || !id->is_int64()) continue;
      out[id->get_int64()] = v;
      if (when) (*when)[id->get_int64()] = clock_type::now();
    }
  }

  // `kill` the copies at once; each must then end `killed` within the bound
  // (measured from its kill request to the reply of its `wait`).
  void kill_all(const std::vector<std::string>& copies) {
    std::map<std::int64_t, json::value> replies;
    std::map<std::int64_t, clock_type::time_point> when;
    std::vector<std::tuple<std::int64_t, std::int64_t, clock_type::time_point>> asked;
    std::vector<std::int64_t> ids;
    for (const auto& pid : copies) {
      auto t0 = clock_type::now();
      std::int64_t k = ctl_->request("kill", {{"pid", pid}});
      std::int64_t w = ctl_->request("wait", {{"pid", pid}});
      asked.emplace_back(k, w, t0);
      ids.insert(ids.end(), {k, w});
    }
    collect(replies, ids, 5s, &when);
    for (auto [k, w, t0] : asked) {
      CHECK_MESSAGE(at(replies[k], "/result") == json::value(true),
                    "kill refused (did it end before the kill?): ", json::serialize(replies[k]));
      CHECK_MESSAGE(replies.count(w), "no exit within 5 s of the kill");
      if (!replies.count(w)) continue;
      double ms = ms_between(t0, when[w]);
      kill_latencies.push_back(ms);
      CHECK_MESSAGE(str(at(replies[w], "/result/reason")) == "killed",
                    "exit: ", json::serialize(replies[w]).substr(0, 600));
      CHECK_MESSAGE(ms <= kill_bound_ms, "kill took ", ms, " ms");
    }
  }

  // Kills whatever the script left (children, spawned names) but the canary,
  // so that it does not weigh on the next one; all of it must go within 2 s.
  void clean_up() {
    // Every pid but the canary's; nullopt when the list did not come (not "none").
    auto others = [&]() -> std::optional<std::vector<std::string>> {
      json::value r = ctl_->call("list", {}, 2s);
      json::value listed = at(r, "/result");
      if (!listed.is_array()) return std::nullopt;
      std::vector<std::string> pids;
      for (const auto& p : listed.get_array())
        if (str(at(p, "/pid")) != canary_) pids.push_back(str(at(p, "/pid")));
      return pids;
    };
    bool gone = luad::test::eventually(
        [&] {
          if (!d_.alive()) return true;
          auto left = others();
          if (!left) return false;
          // Owner-wide, as killpg: a spawn bomb's survivors cannot refill
          // the slots its killed copies free (runtime::scheduler::kill_owner).
          if (!left->empty()) ctl_->request("kill", {{"owner", k_attacker}});
          return left->empty();
        },
        sanitizer_build ? 20s : 2s);  // a sanitizer ends 1,000 processes slowly
    CHECK_MESSAGE(gone, "processes it left behind could not be killed within 2 s");
  }

  // The daemon must still run and answer; if it died, say how and start it
  // again (with a new canary) so the rest of the corpus still runs.
  void alive_and_answering(const std::string& name) {
    bool alive = d_.alive();
    CHECK_MESSAGE(alive, "the daemon died (", d_.how_it_ended(), ") during ", name, "\n",
                  d_.log_tail());
    if (alive) {
      auto t0 = clock_type::now();
      json::value r = ctl_->call("ping", {}, 2s);
      CHECK_MESSAGE(str(at(r, "/result")) == "pong", "no ping within 2 s after ", name);
      CHECK_MESSAGE(ms_between(t0, clock_type::now()) <= ping_bound_ms, "ping after ", name);
      if (!r.is_null()) return;
      d_.stop(1s);  // stuck: end it
    }
    ++restarts;
    d_.start();
    REQUIRE(d_.started());
    connect();
  }

  daemon_process& d_;
  std::unique_ptr<line_client> ctl_;
  std::string canary_;
};

std::string figures(std::vector<double> v) {
  if (v.empty()) return "none";
  std::sort(v.begin(), v.end());
  std::ostringstream out;
  out.precision(3);
  out << "p50 " << v[v.size() / 2] << " ms, p99 " << v[(v.size() * 99) / 100] << " ms, max "
      << v.back() << " ms (" << v.size() << ")";
  return out.str();
}

/// How late the machine probe woke, at worst, in a sleep overlapping the
/// canary's sleep that woke at `wake` ms, `late` ms late.
double machine_lateness(const observers& o, double wake, double late) {
  double begin = wake - 10 - late, worst = 0;
  for (const sample& p : o.probe_late)
    if (p.at_ms >= begin && p.at_ms - 10 - p.value <= wake) worst = std::max(worst, p.value);
  return worst;
}

/// The canary's lateness net of the machine's: a sleep of the canary's
/// counts against luad only by how much later it woke than the probe's
/// sleeps beside it did (a shared, loaded CI machine delays both alike).
double net_lateness(const observers& o, double wake, double late) {
  return std::max(0.0, late - machine_lateness(o, wake, late));
}

/// What one script's window saw.
struct seen_in {
  double canary_max_ms = 0;      ///< the latest canary wake due in it (raw)
  double canary_net_max_ms = 0;  ///< the same, net of the machine's lateness
  double ping_max_ms = 0;
  double rss_peak_kib = 0;  ///< the daemon's RSS peak so far (RSS rarely shrinks)
  double rss_rise_kib = 0;  ///< how much the peak rose during the window
};

std::vector<seen_in> attribute(const std::vector<std::pair<double, double>>& windows,
                               const observers& o, const json::value& canary) {
  std::vector<seen_in> out(windows.size());
  json::value late = at(canary, "/late");
  double peak_before = 0;
  std::size_t r = 0;
  for (std::size_t i = 0; i < windows.size(); ++i) {
    auto [begin, end] = windows[i];
    seen_in& w = out[i];
    // A late sleep is blamed on the script running when it was due (wake -
    // lateness): what held the workers then, not what merely overlapped.
    double next_begin = i + 1 < windows.size() ? windows[i + 1].first : end + 1e9;
    if (late.is_array())
      for (std::size_t k = 0; k + 1 < late.get_array().size(); k += 2) {
        double wake = num(late.get_array()[k]), ms = num(late.get_array()[k + 1]);
        double due = wake - ms;
        if (due < begin || due >= next_begin) continue;
        w.canary_max_ms = std::max(w.canary_max_ms, ms);
        w.canary_net_max_ms = std::max(w.canary_net_max_ms, net_lateness(o, wake, ms));
      }
    for (const sample& p : o.pings)
      if (p.at_ms + p.value >= begin && p.at_ms <= end)
        w.ping_max_ms = std::max(w.ping_max_ms, p.value);
    double peak = peak_before;
    for (; r < o.rss.size() && o.rss[r].at_ms <= end; ++r) peak = std::max(peak, o.rss[r].value);
    w.rss_peak_kib = peak;
    w.rss_rise_kib = peak - peak_before;
    peak_before = peak;
  }
  return out;
}

}  // namespace

TEST_CASE("hostile: the corpus, two copies of each script at once beside a canary") {
  std::vector<script_file> corpus = read_corpus();
  REQUIRE(corpus.size() >= 10);
  // For chasing one attack: LUAD_CORPUS_ONLY=part-of-a-name runs only the
  // scripts whose name holds it, LUAD_CORPUS_REPEAT=N runs each N times.
  if (const char* only = std::getenv("LUAD_CORPUS_ONLY")) {
    std::erase_if(corpus, [&](const script_file& s) { return s.name.find(only) == s.name.npos; });
    REQUIRE_MESSAGE(!corpus.empty(), "LUAD_CORPUS_ONLY=", only, " matches no script");
  }
  if (const char* repeat = std::getenv("LUAD_CORPUS_REPEAT")) {
    std::vector<script_file> once = corpus;
    for (int i = 1; i < std::atoi(repeat); ++i)
      corpus.insert(corpus.end(), once.begin(), once.end());
  }
  if (asan_build) ::setenv("ASAN_OPTIONS", "detect_leaks=1:quarantine_size_mb=32", 1);
  daemon_process d(corpus_config());
  REQUIRE_MESSAGE(d.started(), d.log_tail());
  std::size_t rss_start = d.rss_kib();
  auto started = clock_type::now();
  observers seen(d);
  corpus_run run(d);
  for (const script_file& s : corpus) run.run(s);
  json::value canary = run.canary_report();
  double seconds = ms_between(started, clock_type::now()) / 1000;
  seen.stop();
  std::vector<seen_in> per = attribute(run.windows, seen, canary);

  // Per script: the canary's worst lateness, ping, and the daemon's RSS.
  std::ostringstream table;
  table.precision(3);
  double ping_max = 0, rss_max = 0;
  for (std::size_t i = 0; i < corpus.size() && i < per.size(); ++i) {
    const seen_in& w = per[i];
    ping_max = std::max(ping_max, w.ping_max_ms);
    table << "  " << corpus[i].name << ": canary max " << w.canary_max_ms << " ms (net "
          << w.canary_net_max_ms << "), ping max " << w.ping_max_ms << " ms, RSS peak "
          << w.rss_peak_kib / 1024 << " MiB (+" << w.rss_rise_kib / 1024 << ")\n";
    // RSS rarely shrinks: blame only the scripts that raised the peak past it.
    if (w.rss_rise_kib > 0)
      CHECK_MESSAGE(w.rss_peak_kib <= rss_bound_kib, corpus[i].name, ": daemon RSS ",
                    w.rss_peak_kib / 1024, " MiB over the bound ", rss_bound_kib / 1024, " MiB");
    CHECK_MESSAGE(w.ping_max_ms <= ping_bound_ms, corpus[i].name, ": a ping took ", w.ping_max_ms,
                  " ms");
    CHECK_MESSAGE(w.canary_net_max_ms <= lateness_bound_ms, corpus[i].name, ": the canary woke ",
                  w.canary_max_ms, " ms late, ", w.canary_net_max_ms,
                  " ms more than the machine probe beside it");
  }
  for (const sample& s : seen.rss) rss_max = std::max(rss_max, s.value);
  std::string build = asan_build ? " (ASan build)" : tsan_build ? " (TSan build)" : "";
  MESSAGE("hostile corpus: ", corpus.size(), " scripts in ", seconds, " s", build, "\n",
          table.str());
  MESSAGE("canary lateness: p50 ", num(at(canary, "/p50")), " ms, p99 ", num(at(canary, "/p99")),
          " ms, max ", num(at(canary, "/max")), " ms over ", num(at(canary, "/count")),
          " sleeps (goal ", lateness_goal_ms, " ms, enforced ", lateness_bound_ms, " ms)");
  double net_max = 0, probe_max = 0;
  for (const seen_in& w : per) net_max = std::max(net_max, w.canary_net_max_ms);
  for (const sample& p : seen.probe_late) probe_max = std::max(probe_max, p.value);
  MESSAGE("canary lateness net of the machine's: max ", net_max, " ms (the probe outside the",
          " daemon woke up to ", probe_max, " ms late)");
  MESSAGE("kill latency: ", figures(run.kill_latencies), " (bound ", kill_bound_ms, " ms)");
  MESSAGE("daemon RSS: ", rss_start / 1024, " MiB at start, max ", rss_max / 1024, " MiB (bound ",
          rss_bound_kib / 1024, " MiB); ping max ", ping_max, " ms");

  CHECK(run.restarts == 0);
  REQUIRE_MESSAGE(at(canary, "/max").is_number(), "the canary's report was lost");
  CHECK(num(at(canary, "/count")) > 0);
  CHECK(net_max <= lateness_bound_ms);
  CHECK(rss_max <= static_cast<double>(rss_bound_kib));
  CHECK_MESSAGE(d.stop(10s), "the daemon did not stop cleanly on SIGTERM: ", d.how_it_ended(), "\n",
                d.log_tail());
}

TEST_SUITE_END();
