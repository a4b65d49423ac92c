// `luad run`: compile, spawn, wait for the exit, print results or the error.
#include "server/run.hpp"

#include <cctype>
#include <cstdio>
#include <filesystem>
#include <future>
#include <iostream>
#include <utility>

#include "proto/json_rpc.hpp"
#include "runtime/code.hpp"
#include "runtime/json.hpp"
#include "server/engine.hpp"

namespace luad::server {

namespace {

// `v` as one line: the protocol's encoding (proto::to_json: bytes that are
// not UTF-8 as {"$bytes": base64}, NaN and infinities as null) printed
// through the runtime codec (keys sorted, floats as "0.5"): exactly what
// `luad submit --wait` prints for the same script.
std::string printed(const boost::json::value& v) {
  runtime::result<std::string> text = runtime::json_encode(proto::from_json(v));
  if (text) return std::move(*text);
  std::string line = proto::frame(v);  // (nested deeper than the codec goes)
  line.pop_back();
  return line;
}

// Prints a normal exit's results on stdout, one JSON line each.
void print_results(const runtime::exit_info& info) {
  for (const runtime::value& v : info.results) std::cout << printed(proto::to_json(v)) << '\n';
}

int status_of(runtime::exit_reason r) {
  switch (r) {
    case runtime::exit_reason::normal: return run_ok;
    case runtime::exit_reason::error: return run_error;
    case runtime::exit_reason::limit: return run_limit;
    case runtime::exit_reason::killed:
    case runtime::exit_reason::shutdown: return run_killed;
  }
  return run_error;
}

}  // namespace

int run_script(const run_options& opts) {
  runtime::chunk_ptr code = runtime::compile_file(opts.file);
  runtime::spawn_options so;
  so.ctx.limits = opts.limits;
  so.ctx.permissions = opts.permissions;
  // Packages (require) and spawned scripts come from the script's folder.
  std::error_code ec;
  auto folder = std::filesystem::weakly_canonical(std::filesystem::absolute(opts.file), ec);
  if (!ec) so.ctx.script_root = folder.parent_path().string();
  for (const std::string& a : opts.args) so.args.emplace_back(a);
  std::promise<runtime::exit_info> exited;
  so.on_exit = [&exited](const runtime::exit_info& info) { exited.set_value(info); };

  engine_options eo;
  eo.scheduler = runtime::scheduler_options::with_workers(opts.workers);
  eo.scheduler.max_processes = opts.max_processes;
  eo.data_dir = opts.data_dir;
  engine eng(std::move(eo));
  if (auto id = eng.scheduler().spawn(code, std::move(so)); !id) {
    std::cerr << "luad: could not start the process: " << id.error().message << "\n";
    return run_error;
  }
  runtime::exit_info info = exited.get_future().get();
  eng.stop();

  if (info.reason != runtime::exit_reason::normal) {
    std::cerr << printed(proto::exit_json(info)) << '\n';
    return status_of(info.reason);
  }
  print_results(info);
  std::cout.flush();
  return run_ok;
}

}  // namespace luad::server
