// The compile pool: an Asio thread pool whose results hop back to the io thread.
#include "server/compile_pool.hpp"

#include <boost/asio/post.hpp>

#include <utility>

namespace luad::server {

namespace asio = boost::asio;

compile_pool::compile_pool(asio::io_context& io, std::size_t threads) : io_(io), pool_(threads) {}

compile_pool::~compile_pool() { stop(); }

void compile_pool::run(std::function<runtime::chunk_ptr()> work,
                       std::function<void(runtime::chunk_ptr)> then) {
  asio::post(pool_, [this, work = std::move(work), then = std::move(then)]() mutable {
    runtime::chunk_ptr code = work();
    asio::post(io_, [then = std::move(then), code = std::move(code)] { then(code); });
  });
}

void compile_pool::stop() {
  pool_.stop();
  pool_.join();
}

}  // namespace luad::server
