// Benchmark plumbing: result lines, machine facts, exit counting, clocks.
#include "bench/harness.hpp"

#include <sys/resource.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <thread>

namespace luad::bench {

void report(std::string_view name, double value, std::string_view unit) {
  // Large rates read better as integers, small figures keep two decimals.
  if (value >= 100) {
    std::printf("%.*s %.0f %.*s\n", static_cast<int>(name.size()), name.data(), value,
                static_cast<int>(unit.size()), unit.data());
  } else {
    std::printf("%.*s %.2f %.*s\n", static_cast<int>(name.size()), name.data(), value,
                static_cast<int>(unit.size()), unit.data());
  }
  std::fflush(stdout);
}

void note(std::string_view text) {
  std::fprintf(stderr, "# %.*s\n", static_cast<int>(text.size()), text.data());
}

void print_machine() {
  std::string model = "unknown";
  std::ifstream cpuinfo("/proc/cpuinfo");
  for (std::string line; std::getline(cpuinfo, line);) {
    if (line.rfind("model name", 0) == 0) {
      auto colon = line.find(':');
      if (colon != std::string::npos) model = line.substr(colon + 2);
      break;
    }
  }
  note("machine: nproc " + std::to_string(std::thread::hardware_concurrency()) + ", cpu " + model);
}

std::string size_tag(std::size_t n) {
  if (n == 1000000) return "1m";
  if (n >= 1000 && n % 1000 == 0) return std::to_string(n / 1000) + "k";
  return std::to_string(n);
}

std::size_t rss_bytes() {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoull(line.substr(6)) * 1024;  // "... kB"
  }
  return 0;
}

double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  auto secs = [](const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6; };
  return secs(u.ru_utime) + secs(u.ru_stime);
}

namespace {

struct cpu_ticks {
  unsigned long long busy = 0, idle = 0;
};

cpu_ticks read_ticks() {
  std::ifstream stat("/proc/stat");
  std::string cpu;
  unsigned long long user = 0, nice = 0, sys = 0, idle = 0, iowait = 0, irq = 0, softirq = 0,
                     steal = 0;
  stat >> cpu >> user >> nice >> sys >> idle >> iowait >> irq >> softirq >> steal;
  return {user + nice + sys + irq + softirq + steal, idle + iowait};
}

}  // namespace

double machine_busy(std::chrono::milliseconds window) {
  cpu_ticks a = read_ticks();
  std::this_thread::sleep_for(window);
  cpu_ticks b = read_ticks();
  auto busy = static_cast<double>(b.busy - a.busy);
  double total = busy + static_cast<double>(b.idle - a.idle);
  return total > 0 ? busy / total : 0;
}

double seconds_since(wall_clock::time_point t0) {
  return std::chrono::duration<double>(wall_clock::now() - t0).count();
}

std::function<void(const runtime::exit_info&)> exit_latch::callback() {
  return [this](const runtime::exit_info& e) { count(e); };
}

void exit_latch::count(const runtime::exit_info& e) {
  if (e.reason != runtime::exit_reason::normal) abnormal_.fetch_add(1, std::memory_order_relaxed);
  if (done_.fetch_add(1, std::memory_order_acq_rel) + 1 == target_) {
    std::lock_guard lock(mu_);  // pairs with wait(): no lost wake-up
    cv_.notify_all();
  }
}

void exit_latch::wait() {
  std::unique_lock lock(mu_);
  cv_.wait(lock, [this] { return done_.load(std::memory_order_acquire) >= target_; });
}

runtime::chunk_ptr compile_or_die(const char* source, const char* name) {
  runtime::chunk_ptr code = runtime::compile(source, name);
  if (code->compile_error) {
    note(std::string("compile error in ") + name + ": " + code->compile_error->message);
    std::exit(1);
  }
  return code;
}

}  // namespace luad::bench
