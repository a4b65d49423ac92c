// The daemon's compile threads: submitted source, and scripts the code cache
// must read and compile, are compiled here and never on the io thread, so a
// slow compile delays only its own request (ping, ps, kill are answered).
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>

#include <cstddef>
#include <functional>

#include "runtime/code.hpp"

namespace luad::server {

class compile_pool {
 public:
  /// `threads` compile threads; answers are posted to `io`.
  explicit compile_pool(boost::asio::io_context& io, std::size_t threads = 2);
  /// stop(), then waits for the compile in progress (bounded by
  /// runtime::compile_deadline()).
  ~compile_pool();
  compile_pool(const compile_pool&) = delete;
  compile_pool& operator=(const compile_pool&) = delete;

  /// Runs `work` on a compile thread, then `then` with its chunk on the io
  /// thread. Any thread. After stop(), queued work is dropped unanswered.
  void run(std::function<runtime::chunk_ptr()> work, std::function<void(runtime::chunk_ptr)> then);
  /// Drops queued work and joins the threads. Idempotent.
  void stop();

 private:
  boost::asio::io_context& io_;
  boost::asio::thread_pool pool_;
};

}  // namespace luad::server
