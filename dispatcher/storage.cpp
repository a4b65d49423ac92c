// The storage dispatcher (storage.hpp): commands and journal calls handed to
// the backend as they come.
#include "dispatcher/storage.hpp"

#include <utility>

#include "dispatcher/sqlite_store.hpp"

namespace luad::dispatcher {

storage::storage(std::string data_dir)
    : backend_(std::make_unique<sqlite_store>(std::move(data_dir))) {}

storage::storage(std::unique_ptr<store_backend> backend) : backend_(std::move(backend)) {}

storage::~storage() { stop(); }

void storage::submit(command&& cmd, completion&& done) {
  backend_->submit(std::move(cmd), std::move(done));
}

void storage::create_run(run_record run, written_fn done) {
  backend_->create_run(std::move(run), std::move(done));
}

void storage::set_state(std::string run, run_state state, std::string detail, written_fn done) {
  backend_->set_state(std::move(run), state, std::move(detail), std::move(done));
}

void storage::append(journal_entry entry, written_fn done) {
  backend_->append(std::move(entry), std::move(done));
}

void storage::apply_and_append(journal_entry entry, runtime::value store_args, applied_fn done) {
  backend_->apply_and_append(std::move(entry), std::move(store_args), std::move(done));
}

void storage::append_message(inbox_message m, written_fn done) {
  backend_->append_message(std::move(m), std::move(done));
}

runtime::result<std::vector<run_record>> storage::runs(bool unfinished_only) {
  return backend_->runs(unfinished_only);
}

runtime::result<run_record> storage::run(std::string_view id) { return backend_->run(id); }

runtime::result<std::vector<journal_entry>> storage::history(std::string_view run) {
  return backend_->history(run);
}

runtime::result<std::vector<inbox_message>> storage::messages(std::string_view run) {
  return backend_->messages(run);
}

}  // namespace luad::dispatcher
