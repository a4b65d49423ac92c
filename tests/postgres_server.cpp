// The test PostgreSQL server: see tests/postgres_server.hpp.
#include "tests/postgres_server.hpp"

#include <libpq-fe.h>

#include <pwd.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cstdio>
#include <fstream>
#include <iterator>
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
    if (::geteuid() == 0) {
      const passwd* pg = ::getpwnam("postgres");
      if (!pg || ::chown(dir_.c_str(), pg->pw_uid, pg->pw_gid) != 0)
        throw std::runtime_error("cannot give " + dir_.string() + " to the postgres user");
    }
    run_as_owner((k_bin / "initdb").string() + " -D '" + (dir_ / "data").string() +
                 "' -A trust -U postgres --no-sync -E UTF8 --locale=C");  // superuser: postgres
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
  std::string wrapped = ::geteuid() == 0 ? "runuser -u postgres -- " + command : command;
  std::string out;
  int status = run_command(wrapped, out);
  if (status != 0) {
    std::ifstream in(dir_ / "log");
    std::string log(std::istreambuf_iterator<char>(in), {});
    throw std::runtime_error("'" + command + "' failed (" + std::to_string(status) + "): " + out +
                             (log.empty() ? "" : "\nserver log:\n" + log));
  }
  return out;
}

}  // namespace luad::test
