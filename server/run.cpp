// `luad run`: compile, spawn, wait for the exit, print results or the error.
#include "server/run.hpp"

#include <cctype>
#include <cstdio>
#include <filesystem>
#include <future>
#include <iostream>

#include "modules/json.hpp"
#include "runtime/code.hpp"
#include "server/engine.hpp"

namespace luad::server {

namespace {

std::string error_json(const runtime::exit_info& info) {
  runtime::value::map m;
  m.emplace_back("pid", info.id.to_string());
  m.emplace_back("reason", std::string(runtime::reason_name(info.reason)));
  m.emplace_back("kind", std::string(runtime::kind_name(info.err.kind)));
  m.emplace_back("message", info.err.message);
  m.emplace_back("retryable", info.err.retryable);
  if (!info.err.traceback.empty()) m.emplace_back("traceback", info.err.traceback);
  std::string out, why;
  if (!modules::json_encode(runtime::value(std::move(m)), out, why)) out = R"({"reason":"error"})";
  return out;
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

bool parse_size(const std::string& text, std::size_t& out) {
  std::size_t i = 0;
  unsigned long long n = 0;
  while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) {
    if (n > (~0ull) / 10) return false;
    n = n * 10 + static_cast<unsigned>(text[i++] - '0');
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
  runtime::pid id = eng.scheduler().spawn(code, std::move(so));
  if (!id) {
    std::cerr << "luad: could not start the process\n";
    return run_error;
  }
  runtime::exit_info info = exited.get_future().get();
  eng.stop();

  if (info.reason != runtime::exit_reason::normal) {
    std::cerr << error_json(info) << '\n';
    return status_of(info.reason);
  }
  for (const runtime::value& v : info.results) {
    std::string out, why;
    if (!modules::json_encode(v, out, why)) {
      std::cerr << R"({"reason":"error","kind":"invalid","message":")"
                << "result not JSON: " << why << "\"}\n";
      return run_error;
    }
    std::cout << out << '\n';
  }
  std::cout.flush();
  return run_ok;
}

}  // namespace luad::server
