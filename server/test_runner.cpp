// `luad test` (test_runner.hpp): discovery of test files, one engine and one
// process per test under the fakes, and the reports (lines, summary, JUnit).
#include "server/test_runner.hpp"

#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <memory>
#include <sstream>
#include <utility>

#include "dispatcher/test_fakes.hpp"
#include "modules/modules.hpp"
#include "runtime/code.hpp"
#include "runtime/permissions.hpp"
#include "runtime/process.hpp"
#include "server/engine.hpp"

namespace luad::server {

namespace {

namespace fs = std::filesystem;
using clock_type = std::chrono::steady_clock;

// A test file: how it is shown, the folder it is required from, its package
// name there, and why it cannot be loaded (if it cannot).
struct test_file {
  std::string shown;
  std::string root;
  std::string module;
  std::string problem;
  std::string shown_root;  // how `root` is shown ("" for the current folder)
  std::string path;        // the file's canonical path
};

enum class verdict { pass, fail, error };

struct case_result {
  std::string name;
  verdict result = verdict::pass;
  double seconds = 0;
  std::string message, traceback;
};

struct file_result {
  const test_file* file;
  std::vector<case_result> cases;
};

// The package name of `rel` (a path below its root, ending in .lua), or empty
// when a part of it has a dot and `require` could not name it.
std::string module_name(const fs::path& rel) {
  std::string name;
  fs::path without = rel;
  without.replace_extension();
  for (const fs::path& part : without) {
    std::string p = part.string();
    if (p.empty() || p.find('.') != std::string::npos) return {};
    if (!name.empty()) name += '.';
    name += p;
  }
  return name;
}

test_file make_file(const fs::path& root, const fs::path& file, std::string shown,
                    const fs::path& shown_root) {
  test_file t{std::move(shown),
              root.string(),
              module_name(file.lexically_relative(root)),
              {},
              shown_root.empty() ? std::string() : (shown_root / "").lexically_normal().string(),
              file.string()};
  if (t.module.empty())
    t.problem = "cannot be loaded with require (a folder or file name holds a '.'); rename it";
  return t;
}

bool is_test_file(const fs::path& p) {
  std::string name = p.filename().string();
  return name.size() > 9 && name.ends_with("_test.lua");
}

// A test file whose script root is the first of `roots` holding it, else
// `root` (the folder given, or the file's own folder), shown as `shown_root`.
test_file locate(const std::vector<std::string>& roots, const fs::path& file, std::string shown,
                 fs::path root, fs::path shown_root) {
  for (const std::string& r : roots) {
    std::error_code ec;
    fs::path canon = fs::canonical(r, ec);
    if (ec) continue;
    fs::path rel = file.lexically_relative(canon);
    if (!rel.empty() && *rel.begin() != "..") {
      root = canon;
      shown_root = r;
      break;
    }
  }
  return make_file(root, file, std::move(shown), shown_root);
}

// Every test file under `paths`, in path order. False (with a message on
// `err`) when a path does not exist.
bool discover(const test_options& opts, const std::vector<std::string>& paths,
              std::vector<test_file>& out, std::ostream& err) {
  for (const std::string& given : paths) {
    std::error_code ec;
    fs::path canon = fs::canonical(given, ec);
    if (ec) {
      err << "luad test: " << given << ": " << ec.message() << '\n';
      return false;
    }
    if (!fs::is_directory(canon)) {
      out.push_back(
          locate(opts.roots, canon, given, canon.parent_path(), fs::path(given).parent_path()));
      continue;
    }
    std::vector<fs::path> found;
    for (auto it = fs::recursive_directory_iterator(
             canon, fs::directory_options::skip_permission_denied, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if (it->is_regular_file(ec) && is_test_file(it->path())) found.push_back(it->path());
    }
    if (ec) {
      err << "luad test: " << given << ": " << ec.message() << '\n';
      return false;
    }
    std::sort(found.begin(), found.end());
    for (const fs::path& f : found) {
      fs::path shown = fs::path(given) / f.lexically_relative(canon);
      out.push_back(locate(opts.roots, f, shown.lexically_normal().string(), canon, given));
    }
  }
  return true;
}

// A folder for one test's store, in memory when /dev/shm is there; removed
// when this goes.
class scratch_dir {
 public:
  scratch_dir() {
    std::error_code ec;
    fs::path base = fs::is_directory("/dev/shm", ec) && ::access("/dev/shm", W_OK) == 0
                        ? fs::path("/dev/shm")
                        : fs::temp_directory_path(ec);
    std::string tmpl = (base / "luad-test-XXXXXX").string();
    if (::mkdtemp(tmpl.data())) path_ = tmpl;
  }
  ~scratch_dir() {
    std::error_code ec;
    if (!path_.empty()) fs::remove_all(path_, ec);
  }
  scratch_dir(const scratch_dir&) = delete;
  scratch_dir& operator=(const scratch_dir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// How one process of the driver ended.
struct driven {
  runtime::exit_info info;
  bool timed_out = false;
  bool stuck = false;
  double seconds = 0;
};

// The driver: requires the test file as a package and lists or runs it.
constexpr const char* k_driver = R"lua(
local test = require("test")
local mode, module, name = ...
if mode == "list" then return test._list(module) end
return test._run(module, name)
)lua";

// Runs the driver for `file` in an engine of its own, under fresh fakes.
driven drive(const test_file& file, const std::vector<std::string>& args,
             const std::vector<std::string>& permissions, const test_options& opts) {
  scratch_dir data;
  auto fakes = std::make_shared<dispatcher::test_fakes>();
  engine_options eo;
  eo.scheduler = runtime::scheduler_options::with_workers(2);
  eo.scheduler.modules = modules::with_test();
  eo.data_dir = data.path();
  engine eng(std::move(eo));
  runtime::scheduler& sched = eng.scheduler();

  std::atomic<bool> stuck{false};
  std::atomic<std::uint64_t> test_serial{0};
  fakes->start(
      eng.commands(),
      [&sched] {
        bool busy = false;
        sched.visit([&busy](runtime::process& p) {
          const char* s = p.status();
          busy |= std::strcmp(s, "runnable") == 0 || std::strcmp(s, "running") == 0;
        });
        return !busy;
      },
      [&] {
        // Said before the kill: the killed process's exit may be read at
        // once. (A test process that has just ended looks idle too: not
        // stuck; judge() also needs its reason to be our kill.)
        stuck = true;
        if (!sched.kill(runtime::pid{0, test_serial.load()}, runtime::exit_reason::killed, "stuck"))
          stuck = false;
      });

  runtime::spawn_options so;
  so.ctx.limits = opts.limits;
  so.ctx.permissions = permissions;
  so.ctx.script_root = file.root;
  for (const std::string& a : args) so.args.emplace_back(a);
  so.commands = fakes;
  std::promise<runtime::exit_info> exited;
  so.on_exit = [&exited](const runtime::exit_info& info) { exited.set_value(info); };
  std::future<runtime::exit_info> done = exited.get_future();

  // Named as the test file, so that its spawns resolve beside it.
  runtime::chunk_ptr driver = runtime::compile(k_driver, file.path);
  driven d;
  auto started = clock_type::now();
  runtime::result<runtime::pid> id = sched.spawn(driver, std::move(so));
  if (!id) {
    d.info.reason = runtime::exit_reason::error;
    d.info.err = id.error();
  } else {
    test_serial = id->serial;
    if (done.wait_for(std::chrono::duration<double>(opts.timeout)) != std::future_status::ready) {
      d.timed_out = true;
      sched.kill(*id, runtime::exit_reason::killed, "timeout");
    }
    d.info = done.get();
  }
  d.seconds = std::chrono::duration<double>(clock_type::now() - started).count();
  d.stuck = stuck;
  fakes->stop();
  eng.stop();
  return d;
}

// `text` with the test root's absolute path shown as the user gave it.
std::string shortened(std::string text, const test_file& f) {
  std::string abs = f.root + "/";
  for (std::size_t at = text.find(abs); at != std::string::npos;
       at = text.find(abs, at + f.shown_root.size())) {
    text.replace(at, abs.size(), f.shown_root);
  }
  return text;
}

// What a driver's end says about one test.
case_result judge(std::string name, const driven& d, const test_options& opts) {
  case_result c{std::move(name), verdict::pass, d.seconds, {}, {}};
  // Our kill explains the end only if the process did not end by itself first.
  bool ours = d.info.reason == runtime::exit_reason::killed;
  if (d.timed_out && ours) {
    c.result = verdict::error;
    c.message = "timed out after " + std::to_string(static_cast<int>(opts.timeout)) +
                " s of real time (--timeout)";
  } else if (d.stuck && ours) {
    c.result = verdict::error;
    c.message =
        "stuck: every process waits, and no timer, request or message can wake one "
        "(a receive nobody answers?)";
  } else if (d.info.reason == runtime::exit_reason::error) {
    c.result = verdict::fail;
    c.message = d.info.err.message;
    c.traceback = d.info.err.traceback;
  } else if (d.info.reason != runtime::exit_reason::normal) {
    c.result = verdict::error;
    c.message = std::string(runtime::reason_name(d.info.reason)) + ": " + d.info.err.message;
    c.traceback = d.info.err.traceback;
  }
  return c;
}

// The strings of an array value (the driver's lists).
std::vector<std::string> strings_of(const runtime::value& v) {
  std::vector<std::string> out;
  if (const auto* a = v.get<runtime::value::array>())
    for (const runtime::value& item : *a)
      if (const auto* s = item.get<std::string>()) out.push_back(*s);
  return out;
}

// Lists the file's tests and the permissions it asks for; an error result
// named "(load)" when it cannot be loaded.
bool list_tests(const test_file& f, const test_options& opts, std::vector<std::string>& names,
                std::vector<std::string>& permissions, case_result& problem) {
  problem.name = "(load)";
  problem.result = verdict::error;
  if (!f.problem.empty()) {
    problem.message = f.problem;
    return false;
  }
  driven d = drive(f, {"list", f.module}, opts.permissions, opts);
  if (d.info.reason != runtime::exit_reason::normal) {
    problem = judge("(load)", d, opts);
    problem.result = verdict::error;
    return false;
  }
  const auto& results = d.info.results;
  names = results.empty() ? std::vector<std::string>{} : strings_of(results[0]);
  permissions = opts.permissions;
  if (results.size() > 1) {
    for (std::string& p : strings_of(results[1])) {
      if (std::string why = runtime::check_permission(p); !why.empty()) {
        problem.message = "permissions: " + why;
        return false;
      }
      permissions.push_back(std::move(p));
    }
  }
  return true;
}

std::string milliseconds(double s) {
  std::ostringstream o;
  o.setf(std::ios::fixed);
  o.precision(s < 0.1 ? 1 : 0);
  o << s * 1000 << " ms";
  return o.str();
}

void print_indented(std::ostream& out, const std::string& text) {
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) out << "        " << line << '\n';
}

void print_case(std::ostream& out, const case_result& c, bool verbose) {
  const char* tag = c.result == verdict::pass   ? "ok   "
                    : c.result == verdict::fail ? "FAIL "
                                                : "ERROR";
  out << "  " << tag << " " << c.name << " (" << milliseconds(c.seconds) << ")\n";
  if (c.result == verdict::pass) return;
  print_indented(out, c.message);
  if (verbose && !c.traceback.empty()) print_indented(out, c.traceback);
}

// --- JUnit XML ---------------------------------------------------------------

std::string xml_escaped(std::string_view s) {
  std::string out;
  for (char ch : s) {
    auto u = static_cast<unsigned char>(ch);
    switch (ch) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      default:
        if (u < 0x20 && ch != '\n' && ch != '\t' && ch != '\r')
          out += "?";  // not allowed in XML 1.0
        else
          out += ch;
    }
  }
  return out;
}

bool write_junit(const std::string& path, const std::vector<file_result>& files, double total,
                 std::ostream& err) {
  std::ostringstream x;
  std::size_t tests = 0, failures = 0, errors = 0;
  for (const file_result& f : files)
    for (const case_result& c : f.cases) {
      ++tests;
      failures += c.result == verdict::fail;
      errors += c.result == verdict::error;
    }
  x << "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    << "<testsuites name=\"luad test\" tests=\"" << tests << "\" failures=\"" << failures
    << "\" errors=\"" << errors << "\" time=\"" << total << "\">\n";
  for (const file_result& f : files) {
    std::size_t ff = 0, fe = 0;
    double ft = 0;
    for (const case_result& c : f.cases) {
      ff += c.result == verdict::fail;
      fe += c.result == verdict::error;
      ft += c.seconds;
    }
    std::string suite = xml_escaped(f.file->shown);
    x << "  <testsuite name=\"" << suite << "\" tests=\"" << f.cases.size() << "\" failures=\""
      << ff << "\" errors=\"" << fe << "\" time=\"" << ft << "\">\n";
    for (const case_result& c : f.cases) {
      x << "    <testcase classname=\"" << suite << "\" name=\"" << xml_escaped(c.name)
        << "\" time=\"" << c.seconds << "\"";
      if (c.result == verdict::pass) {
        x << "/>\n";
        continue;
      }
      const char* tag = c.result == verdict::fail ? "failure" : "error";
      std::string first = c.message.substr(0, c.message.find('\n'));
      x << ">\n      <" << tag << " message=\"" << xml_escaped(first) << "\">"
        << xml_escaped(c.message + (c.traceback.empty() ? "" : "\n" + c.traceback)) << "</" << tag
        << ">\n    </testcase>\n";
    }
    x << "  </testsuite>\n";
  }
  x << "</testsuites>\n";
  std::ofstream file(path, std::ios::trunc);
  file << x.str();
  file.close();
  if (!file) {
    err << "luad test: --junit: cannot write " << path << '\n';
    return false;
  }
  return true;
}

}  // namespace

int run_tests(const test_options& opts, std::ostream& out, std::ostream& err) {
  std::vector<std::string> paths = opts.paths;
  if (paths.empty()) paths = opts.roots.empty() ? std::vector<std::string>{"."} : opts.roots;
  std::vector<test_file> files;
  if (!discover(opts, paths, files, err)) return tests_usage;
  if (files.empty()) {
    err << "luad test: no *_test.lua file under";
    for (const std::string& p : paths) err << ' ' << p;
    err << '\n';
    return tests_usage;
  }

  auto started = clock_type::now();
  std::vector<file_result> results;
  std::size_t passed = 0, failed = 0, filtered = 0;
  for (const test_file& f : files) {
    file_result fr{&f, {}};
    std::vector<std::string> names, permissions;
    case_result problem;
    bool listed = list_tests(f, opts, names, permissions, problem);
    std::vector<std::string> chosen;
    for (const std::string& n : names) {
      if (opts.filter.empty() || (f.shown + "::" + n).find(opts.filter) != std::string::npos)
        chosen.push_back(n);
      else
        ++filtered;
    }
    if (listed && chosen.empty()) continue;
    out << f.shown << '\n';
    if (!listed) {
      fr.cases.push_back(problem);
    } else {
      for (const std::string& n : chosen) {
        fr.cases.push_back(judge(n, drive(f, {"run", f.module, n}, permissions, opts), opts));
      }
    }
    for (case_result& c : fr.cases) {
      c.message = shortened(std::move(c.message), f);
      c.traceback = shortened(std::move(c.traceback), f);
    }
    for (const case_result& c : fr.cases) {
      print_case(out, c, opts.verbose);
      (c.result == verdict::pass ? passed : failed) += 1;
    }
    out.flush();
    results.push_back(std::move(fr));
  }
  double total = std::chrono::duration<double>(clock_type::now() - started).count();

  if (passed + failed == 0) {
    err << "luad test: no test matches --filter '" << opts.filter << "' (" << filtered
        << " tests in " << files.size() << " files)\n";
    return tests_usage;
  }
  out << '\n'
      << passed + failed << (passed + failed == 1 ? " test: " : " tests: ") << passed << " passed, "
      << failed << " failed";
  if (filtered) out << ", " << filtered << " filtered out";
  out << " (" << milliseconds(total) << ")\n";
  if (!opts.junit.empty() && !write_junit(opts.junit, results, total, err)) return tests_failed;
  return failed ? tests_failed : tests_passed;
}

}  // namespace luad::server
