// Test helpers: a shared engine, spawning a script with a future for its exit,
// and temporary folders.
#include "tests/support.hpp"

#include <doctest/doctest.h>

#include <unistd.h>

#include <atomic>
#include <fstream>
#include <iterator>
#include <memory>

namespace luad::test {

server::engine& shared_engine() {
  static server::engine eng(runtime::scheduler_options::with_workers(2));
  return eng;
}

std::future<runtime::exit_info> spawn_lua(server::engine& eng, std::string_view source,
                                          runtime::spawn_options opts, runtime::pid* id) {
  auto done = std::make_shared<std::promise<runtime::exit_info>>();
  auto fut = done->get_future();
  opts.on_exit = [done](const runtime::exit_info& info) { done->set_value(info); };
  auto got = eng.scheduler().spawn(runtime::compile(source, "test.lua"), std::move(opts));
  REQUIRE_MESSAGE(got.ok(), (got ? "" : got.error().message));
  if (id) *id = *got;
  return fut;
}

runtime::exit_info run_lua(std::string_view source, runtime::spawn_options opts,
                           server::engine* eng, std::chrono::seconds timeout) {
  auto fut = spawn_lua(eng ? *eng : shared_engine(), source, std::move(opts));
  return wait_exit(fut, timeout);
}

runtime::exit_info wait_exit(std::future<runtime::exit_info>& fut, std::chrono::seconds timeout) {
  REQUIRE(fut.wait_for(timeout) == std::future_status::ready);
  return fut.get();
}

runtime::exit_info run_file(const std::string& relative) {
  auto done = std::make_shared<std::promise<runtime::exit_info>>();
  auto fut = done->get_future();
  runtime::spawn_options opts;
  opts.on_exit = [done](const runtime::exit_info& info) { done->set_value(info); };
  auto& eng = shared_engine();
  REQUIRE(eng.scheduler().spawn(runtime::compile_file(relative), std::move(opts)).ok());
  return wait_exit(fut);
}

temp_dir::temp_dir(std::string_view tag) {
  static std::atomic<unsigned> serial{0};
  path_ = std::filesystem::temp_directory_path() /
          (std::string(tag) + "_" + std::to_string(::getpid()) + "_" + std::to_string(serial++));
  std::filesystem::remove_all(path_);
  std::filesystem::create_directories(path_);
  path_ = std::filesystem::canonical(path_);
}

temp_dir::~temp_dir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::filesystem::path temp_dir::write(const std::filesystem::path& relative,
                                      std::string_view text) const {
  std::filesystem::path file = path_ / relative;
  std::filesystem::create_directories(file.parent_path());
  std::ofstream(file, std::ios::binary) << text;
  return file;
}

std::filesystem::path temp_dir::write(const std::filesystem::path& relative, std::string_view text,
                                      std::chrono::seconds later) const {
  std::filesystem::path file = path_ / relative;
  auto before = std::filesystem::exists(file) ? std::filesystem::last_write_time(file)
                                              : std::filesystem::file_time_type::clock::now();
  write(relative, text);
  std::filesystem::last_write_time(file, before + later);
  return file;
}

}  // namespace luad::test
