// Running bench/lua/ scripts as processes, timed to their exit.
#include "bench/scripts.hpp"

#include <cstdlib>
#include <future>
#include <memory>

#include "bench/harness.hpp"
#include "runtime/code.hpp"

namespace luad::bench {

std::string bench_script(const char* name) {
  return std::string(LUAD_SOURCE_DIR) + "/bench/lua/" + name;
}

script_run run_script(server::engine& eng, const char* name, std::vector<runtime::value> args) {
  auto done = std::make_shared<std::promise<runtime::exit_info>>();
  auto fut = done->get_future();
  runtime::spawn_options so;
  so.args = std::move(args);
  so.ctx.limits.memory = std::size_t{1} << 30;
  so.on_exit = [done](const runtime::exit_info& e) { done->set_value(e); };
  auto t0 = wall_clock::now();
  (void)eng.scheduler().spawn(eng.scheduler().code().get(bench_script(name)), std::move(so));
  runtime::exit_info e = fut.get();
  double secs = seconds_since(t0);
  if (e.reason != runtime::exit_reason::normal) {
    note(std::string(name) + " failed: " + e.err.message);
    std::exit(1);
  }
  return {secs, std::move(e.results)};
}

double number(const runtime::value& v) {
  if (const auto* d = v.get<double>()) return *d;
  if (const auto* i = v.get<std::int64_t>()) return static_cast<double>(*i);
  return 0;
}

}  // namespace luad::bench
