// The test PostgreSQL server: see tests/postgres_server.hpp.
#include "tests/postgres_server.hpp"

#include <libpq-fe.h>

#include <fcntl.h>
#include <pwd.h>
#include <sys/file.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <mutex>
#include <stdexcept>
#include <system_error>

namespace luad::test {

namespace fs = std::filesystem;

namespace {

const fs::path k_bin = "/usr/lib/postgresql/15/bin";

// Runs a shell command, returning its exit status and its output (both streams).
int run_command(const std::string& command, std::string& output) {
  FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  if (!pipe) return -1;
  std::array<char, 4096> buf{};
  while (std::size_t n = std::fread(buf.data(), 1, buf.size(), pipe)) output.append(buf.data(), n);
  return ::pclose(pipe);
}

// Runs `command` (as the postgres user when we are root, as PostgreSQL
// requires); throws with its output, and `log`'s text if there is one, when it fails.
std::string run_as_postgres(const std::string& command, const fs::path& log = {}) {
  std::string wrapped = ::geteuid() == 0 ? "runuser -u postgres -- " + command : command;
  std::string out;
  int status = run_command(wrapped, out);
  if (status != 0) {
    std::ifstream in(log);
    std::string text(std::istreambuf_iterator<char>(in), {});
    throw std::runtime_error("'" + command + "' failed (" + std::to_string(status) + "): " + out +
                             (text.empty() ? "" : "\nserver log:\n" + text));
  }
  return out;
}

// Gives `dir` to the postgres user when we are root (initdb and the server
// refuse to run as root).
void give_to_postgres(const fs::path& dir) {
  if (::geteuid() != 0) return;
  const passwd* pg = ::getpwnam("postgres");
  if (!pg || ::chown(dir.c_str(), pg->pw_uid, pg->pw_gid) != 0)
    throw std::runtime_error("cannot give " + dir.string() + " to the postgres user");
}

// An exclusive flock on a file, held for the object's life (across processes).
class file_lock {
 public:
  explicit file_lock(const fs::path& path) : fd_(::open(path.c_str(), O_CREAT | O_RDWR, 0600)) {
    if (fd_ < 0 || ::flock(fd_, LOCK_EX) != 0)
      throw std::runtime_error("cannot lock " + path.string());
  }
  ~file_lock() {
    if (fd_ >= 0) ::close(fd_);  // (closing releases the lock)
  }
  file_lock(const file_lock&) = delete;
  file_lock& operator=(const file_lock&) = delete;

 private:
  int fd_;
};

// initdb takes about a second (more on a busy two-core machine), and CTest
// runs each test case in a process of its own, so some eighty cases would
// each pay it. Instead initdb runs once per machine and user, into a template
// folder beside the tests' temp folders, and each server copies its files (a
// stopped cluster's folder is a whole cluster: ~40 MB, tens of ms). The
// template counts only once `complete` is written, so an initdb cut short is
// redone; the name carries initdb's options (v1), so changing them means a new name.
//
// copy_template_cluster copies the template to `data` (making it first if
// need be), under a lock shared by every test process of this user.
void copy_template_cluster(const fs::path& data) {
  static std::mutex in_process;  // (flock does not exclude threads of one process)
  std::lock_guard guard(in_process);
  fs::path tmp = fs::temp_directory_path();
  std::string tag = "luad-pg15-template-v1-" + std::to_string(::geteuid());
  file_lock lock(tmp / (tag + ".lock"));
  fs::path root = tmp / tag;
  if (!fs::exists(root / "complete")) {
    fs::remove_all(root);
    fs::create_directories(root);
    give_to_postgres(root);
    run_as_postgres((k_bin / "initdb").string() + " -D '" + (root / "data").string() +
                    "' -A trust -U postgres --no-sync -E UTF8 --locale=C");  // superuser: postgres
    std::ofstream(root / "complete") << "initdb done\n";
  }
  std::string out;
  // cp -a keeps the files' owner (postgres) and modes (PostgreSQL wants 0700).
  if (run_command("cp -a '" + (root / "data").string() + "' '" + data.string() + "'", out) != 0)
    throw std::runtime_error("cannot copy the template cluster to " + data.string() + ": " + out);
}

}  // namespace

postgres_server::postgres_server() {
  if (!fs::exists(k_bin / "initdb"))
    throw std::runtime_error("PostgreSQL 15 is not installed (no " + (k_bin / "initdb").string() +
                             "): apt-get install postgresql-15");
  static std::atomic<unsigned> serial{0};
  dir_ = fs::temp_directory_path() /
         ("luad-pg-" + std::to_string(::getpid()) + "-" + std::to_string(serial++));
  fs::remove_all(dir_);
  fs::create_directories(dir_);
  try {
    give_to_postgres(dir_);
    copy_template_cluster(dir_ / "data");
    start();
  } catch (...) {
    std::error_code ec;
    fs::remove_all(dir_, ec);  // (no destructor runs for a constructor that throws)
    throw;
  }
}

postgres_server::~postgres_server() {
  try {
    if (running_) stop_immediately();
  } catch (...) {
  }
  std::error_code ec;
  fs::remove_all(dir_, ec);
}

std::string postgres_server::conninfo() const {
  return "host=" + dir_.string() + " port=5432 dbname=postgres user=postgres";
}

std::string postgres_server::new_database() {
  std::string name = "luad_test_" + std::to_string(++databases_);
  PGconn* c = PQconnectdb(conninfo().c_str());
  std::string why;
  if (PQstatus(c) != CONNECTION_OK) {
    why = PQerrorMessage(c);
  } else {
    PGresult* r = PQexec(c, ("CREATE DATABASE " + name).c_str());
    if (PQresultStatus(r) != PGRES_COMMAND_OK) why = PQresultErrorMessage(r);
    PQclear(r);
  }
  PQfinish(c);
  if (!why.empty()) throw std::runtime_error("test postgres: CREATE DATABASE " + name + ": " + why);
  return "host=" + dir_.string() + " port=5432 dbname=" + name + " user=postgres";
}

std::string postgres_server::scalar(const std::string& conninfo, const std::string& sql) {
  PGconn* c = PQconnectdb(conninfo.c_str());
  PGresult* r = PQexec(c, sql.c_str());
  ExecStatusType st = PQresultStatus(r);
  std::string why = st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK ? "" : PQresultErrorMessage(r);
  if (why.empty() && PQstatus(c) != CONNECTION_OK) why = PQerrorMessage(c);
  std::string out = st == PGRES_TUPLES_OK && PQntuples(r) ? PQgetvalue(r, 0, 0) : "";
  PQclear(r);
  PQfinish(c);
  if (!why.empty()) throw std::runtime_error("test postgres: " + sql + ": " + why);
  return out;
}

void postgres_server::start() {
  // No TCP listener (listen_addresses empty): only the socket in dir_, so
  // tests running at once never collide on a port.
  run_as_owner((k_bin / "pg_ctl").string() + " -D '" + (dir_ / "data").string() + "' -l '" +
               (dir_ / "log").string() + "' -w -t 60 -o \"-k '" + dir_.string() +
               "' -c listen_addresses='' -c fsync=off\" start");
  running_ = true;
}

void postgres_server::restart() {
  run_as_owner((k_bin / "pg_ctl").string() + " -D '" + (dir_ / "data").string() +
               "' -w -m fast stop");
  running_ = false;
  start();
}

void postgres_server::stop_immediately() {
  run_as_owner((k_bin / "pg_ctl").string() + " -D '" + (dir_ / "data").string() +
               "' -w -m immediate stop");
  running_ = false;
}

std::string postgres_server::run_as_owner(const std::string& command) const {
  return run_as_postgres(command, dir_ / "log");
}

}  // namespace luad::test
