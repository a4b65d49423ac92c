// `luad run`: compile, spawn, wait for the exit, print results or the error.
#include "server/run.hpp"

#include <cctype>
#include <cstdio>
#include <filesystem>
#include <future>
#include <iostream>
#include <utility>

#include "runtime/code.hpp"
#include "runtime/json.hpp"
#include "server/engine.hpp"

namespace luad::server {

namespace {

// An exit as one JSON line: runtime::exit_value through the runtime codec,
// the shape `luad submit --wait` prints too.
std::string exit_json(const runtime::exit_info& info) {
  runtime::result<std::string> text = runtime::json_encode(runtime::exit_value(info));
  if (text) return std::move(*text);
  // A message or traceback that is not valid UTF-8 cannot be JSON text.
  return R"({"reason":"error"})";
}

// Prints a normal exit's results on stdout, one JSON line each. A result that
// is not JSON (a string that is not UTF-8, NaN) turns the exit into a failure
// of kind invalid; the lines before it stay printed.
void print_results(runtime::exit_info& info) {
  for (const runtime::value& v : info.results) {
    runtime::result<std::string> text = runtime::json_encode(v);
    if (!text) {
      info.reason = runtime::exit_reason::error;
      info.err =
          runtime::fail(runtime::error_kind::invalid, "result not JSON: " + text.error().message);
      return;
    }
    std::cout << *text << '\n';
  }
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
  if (auto id = eng.scheduler().spawn(code, std::move(so)); !id) {
    std::cerr << "luad: could not start the process: " << id.error().message << "\n";
    return run_error;
  }
  runtime::exit_info info = exited.get_future().get();
  eng.stop();

  if (info.reason == runtime::exit_reason::normal) print_results(info);
  if (info.reason != runtime::exit_reason::normal) {
    std::cerr << exit_json(info) << '\n';
    return status_of(info.reason);
  }
  std::cout.flush();
  return run_ok;
}

}  // namespace luad::server
