// The luad executable: command-line parsing; every command lives in the core.
#include <CLI/CLI.hpp>

#include <iostream>

#include "runtime/logging.hpp"
#include "runtime/permissions.hpp"
#include "server/class_check.hpp"
#include "server/client.hpp"
#include "server/config.hpp"
#include "server/daemon.hpp"
#include "server/run.hpp"
#include "server/test_runner.hpp"
#include "server/types.hpp"

int run_cli(int argc, char** argv) {
  CLI::App app{"luad: a Lua actor process server"};
  app.set_version_flag("--version", std::string("luad ") + luad::server::luad_version);
  app.require_subcommand(1);
  std::string log_level = "info";
  auto* log_level_opt =
      app.add_option("--log-level", log_level,
                     "debug, info, warn or error (serve: default from the config)")
          ->check(CLI::IsMember({"debug", "info", "warn", "error"}));

  luad::server::run_options run;
  std::string memory = "64MiB";
  auto* cmd_run = app.add_subcommand("run", "Run one script as a process, in-process (no daemon)");
  cmd_run->add_option("file", run.file, "Lua script")->required();
  cmd_run->add_option("args", run.args, "Arguments, passed to the script as strings (...)");
  cmd_run->add_option("--memory", memory, "Memory limit of the process (e.g. 64MiB; 0 = none)")
      ->capture_default_str();
  cmd_run
      ->add_option("--instructions", run.limits.instructions,
                   "Instruction limit of the process (0 = none)")
      ->capture_default_str();
  cmd_run->add_option("--cpu", run.limits.cpu, "Cpu limit of the process, seconds (0 = none)")
      ->capture_default_str();
  cmd_run->add_option("--workers", run.workers, "Worker threads (0 = one per core)")
      ->capture_default_str();
  cmd_run
      ->add_option("--mailbox", run.limits.mailbox,
                   "Queued messages per process before sends to it fail (0 = unlimited)")
      ->capture_default_str();
  cmd_run->add_option("--max-processes", run.max_processes, "Live processes (0 = unlimited)")
      ->capture_default_str();
  cmd_run
      ->add_option("--allow", run.permissions,
                   "Grant a permission (repeatable): http:HOST[:PORT], http:*, http:insecure, "
                   "store:NAMESPACE")
      ->allow_extra_args(false)  // one value per --allow, so FILE is not swallowed
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll)
      ->check([](const std::string& p) { return luad::runtime::check_permission(p); });
  cmd_run->add_option("--data", run.data_dir, "Folder for the store's database (luad.db)");
  cmd_run->positionals_at_end();

  std::string serve_config = "configs/luad.toml";
  auto* cmd_serve =
      app.add_subcommand("serve", "Run the daemon: workers, store, and the Unix socket");
  cmd_serve->add_option("--config", serve_config, "TOML config file")->capture_default_str();

  luad::server::client_request client;
  auto add_client = [&](const char* name, const char* what) {
    auto* sub = app.add_subcommand(name, what);
    sub->add_option("--socket", client.socket, "Daemon socket (default: $LUAD_SOCKET)");
    sub->add_flag("--json", client.json, "Print the raw JSON result");
    return sub;
  };
  auto* cmd_submit = add_client("submit", "Submit a script to the daemon as a new process");
  cmd_submit->add_option("file", client.file, "Lua script (sent as source)")->required();
  cmd_submit->add_option("args", client.args, "Arguments, as strings");
  cmd_submit->add_flag("--wait", client.wait, "Wait for the exit and print the results");
  cmd_submit->add_flag("--durable", client.durable,
                       "A durable run: journaled, and resumed by replay after a restart");
  cmd_submit->add_option("--profile", client.profile, "Permission profile from the config");
  std::string submit_memory;
  cmd_submit->add_option("--memory", submit_memory,
                         "Lower memory limit than the daemon's default (e.g. 8MiB)");
  cmd_submit->add_option("--instructions", client.instructions,
                         "Lower instruction limit than the daemon's default");
  cmd_submit->positionals_at_end();
  auto* cmd_ps = add_client("ps", "List the daemon's processes");
  cmd_ps->add_option("--status", client.status, "Only runnable, running, waiting or receiving");
  cmd_ps->add_option("--workflow", client.workflow, "Only the processes of this config workflow");
  auto* cmd_logs =
      add_client("logs", "Print a process's recent log lines, then follow until it exits");
  cmd_logs->add_option("pid", client.pid, "Process id")->required();
  cmd_logs->add_option("--level", client.level, "Lowest level shown (default: the daemon's)")
      ->check(CLI::IsMember({"debug", "info", "warn", "error"}));
  bool no_follow = false;
  cmd_logs->add_flag("--no-follow", no_follow, "Print the recent lines only");
  auto* cmd_reload = add_client(
      "reload", "Reread the config and pick up changed code (as SIGHUP does); or one file's code");
  cmd_reload->add_option("path", client.file, "Only this script or package file");
  auto* cmd_info = add_client("info", "Show one process");
  cmd_info->add_option("pid", client.pid, "Process id, e.g. 0.42")->required();
  auto* cmd_kill = add_client("kill", "End a process (or all of an owner's) with reason killed");
  auto* kill_pid = cmd_kill->add_option("pid", client.pid, "Process id");
  cmd_kill->add_option("reason", client.reason, "Message for the exit");
  auto* kill_owner = cmd_kill->add_option(
      "--owner", client.owner,
      "Every process of this owner (uid:N or workflow:NAME); new ones are refused until all ended");
  kill_pid->excludes(kill_owner);
  kill_owner->excludes(kill_pid);
  cmd_kill->callback([&] {
    if (client.pid.empty() && client.owner.empty())
      throw CLI::ValidationError("luad kill", "give a pid or --owner");
  });
  auto* cmd_send = add_client("send", "Send a message to a process");
  cmd_send->add_option("to", client.pid, "Process id or registered name")->required();
  cmd_send->add_option("topic", client.topic, "Message topic")->required();
  cmd_send->add_option("payload", client.payload, "Payload as JSON (default null)");
  auto* cmd_cancel = add_client("cancel", "Ask a process to finish (a CANCEL message)");
  cmd_cancel->add_option("to", client.pid, "Process id or registered name")->required();
  cmd_cancel->add_option("reason", client.reason, "Why");
  auto* cmd_workflows = add_client(
      "workflows", "List the config's workflows and the durable runs, or act on one of them");
  cmd_workflows
      ->add_option("action", client.action,
                   "start, stop or restart a workflow; history, resume or terminate a durable run")
      ->check(CLI::IsMember({"start", "stop", "restart", "history", "resume", "terminate"}));
  cmd_workflows->add_option("name", client.name, "Workflow name, or durable run id");
  auto* cmd_stats = add_client("stats", "The daemon's counters");
  cmd_stats
      ->add_option("--format", client.format,
                   "text (for people), json (as --json) or prometheus (the text exposition "
                   "format 0.0.4, as the metrics listener serves it)")
      ->check(CLI::IsMember({"text", "json", "prometheus"}))
      ->capture_default_str();
  auto* cmd_ping = add_client("ping", "Check that the daemon answers (for health checks)");
  auto* cmd_cluster = add_client(
      "cluster", "The daemons sharing this one's PostgreSQL database: nodes, leases, runs");

  std::string check_file;
  auto* cmd_check = app.add_subcommand(
      "check", "Validate a daemon config file without starting anything (exit 0 if usable)");
  cmd_check->add_option("config", check_file, "TOML config file")->required();

  std::string types_dir = "./luad-types";
  auto* cmd_types = app.add_subcommand(
      "types", "Write Lua language server definitions and a luacheck config for scripts");
  cmd_types->add_option("--out", types_dir, "Folder for the files (created if missing)")
      ->capture_default_str();

  luad::server::test_options tests;
  std::string test_memory = "64MiB", test_config;
  auto* cmd_test = app.add_subcommand(
      "test",
      "Run *_test.lua files: each test function as a process, under fakes (docs/testing.md)");
  cmd_test->add_option("paths", tests.paths,
                       "Test files and folders (default: the config's script roots, else .)");
  cmd_test->add_option("--filter", tests.filter, "Only tests whose 'file::name' contains this");
  cmd_test->add_option("--junit", tests.junit, "Also write the results as JUnit XML to this file");
  cmd_test->add_option("--config", test_config, "Daemon config whose script roots hold the tests");
  cmd_test
      ->add_option("--root", tests.roots,
                   "Script root (repeatable): test files below it require and spawn from it")
      ->allow_extra_args(false)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  cmd_test
      ->add_option("--allow", tests.permissions,
                   "Grant every test a permission (repeatable), beside its suite's permissions")
      ->allow_extra_args(false)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll)
      ->check([](const std::string& p) { return luad::runtime::check_permission(p); });
  cmd_test->add_option("--timeout", tests.timeout, "Real seconds one test may take")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd_test->add_option("--memory", test_memory, "Memory limit of each test process")
      ->capture_default_str();
  cmd_test
      ->add_option("--instructions", tests.limits.instructions,
                   "Instruction limit of each test process (0 = none)")
      ->capture_default_str();
  cmd_test->add_flag("-v,--verbose", tests.verbose, "Print the traceback of each failure");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? 0 : luad::server::run_usage;
  }
  // luad test prints its own report: scripts' info lines would bury it.
  if (*cmd_test && !log_level_opt->count()) log_level = "warn";
  luad::runtime::init_logging(
      luad::runtime::parse_level(log_level).value_or(luad::runtime::log_level::info));

  if (*cmd_serve) return luad::server::serve(serve_config, log_level_opt->count() ? log_level : "");
  for (auto* sub : {cmd_submit, cmd_ps, cmd_info, cmd_kill, cmd_send, cmd_cancel, cmd_workflows,
                    cmd_stats, cmd_logs, cmd_reload, cmd_ping, cmd_cluster}) {
    if (*sub) {
      client.command = sub->get_name();
      client.follow = !no_follow;
      if (!submit_memory.empty()) {
        std::size_t bytes = 0;
        if (!luad::server::parse_size(submit_memory, bytes) || bytes == 0) {
          std::cerr << "luad submit: --memory: cannot read size '" << submit_memory << "'\n";
          return luad::server::run_usage;
        }
        client.memory = static_cast<std::int64_t>(bytes);
      }
      return luad::server::client_command(client);
    }
  }
  if (*cmd_check) {
    try {
      luad::server::config c = luad::server::load_config(check_file);
      // A workflow whose classes forbid a module its code requires never runs.
      std::vector<std::string> problems = luad::server::class_problems(c);
      for (const std::string& p : problems) std::cerr << p << '\n';
      if (!problems.empty()) return luad::server::run_usage;
      std::cout << check_file << ": ok (" << c.workflows.size() << " workflows, "
                << c.profiles.size() << " profiles, data in "
                << (c.storage.backend == "postgres"
                        ? luad::dispatcher::postgres_store::redacted(c.storage.url)
                        : c.storage.data_dir)
                << ")\n";
      return 0;
    } catch (const luad::server::config_error& e) {
      std::cerr << e.what() << '\n';
      return luad::server::run_usage;
    }
  }
  if (*cmd_types) {
    int code = luad::server::write_types(types_dir, std::cerr);
    if (code == 0) std::cout << "luad types: wrote " << types_dir << '\n';
    return code;
  }
  if (*cmd_test) {
    if (!luad::server::parse_size(test_memory, tests.limits.memory)) {
      std::cerr << "luad test: --memory: cannot read size '" << test_memory << "' (try 64MiB)\n";
      return luad::server::tests_usage;
    }
    if (!test_config.empty()) {
      try {
        for (std::string& r : luad::server::load_config(test_config).script_roots)
          tests.roots.push_back(std::move(r));
      } catch (const luad::server::config_error& e) {
        std::cerr << e.what() << '\n';
        return luad::server::tests_usage;
      }
    }
    return luad::server::run_tests(tests, std::cout, std::cerr);
  }
  if (*cmd_run) {
    if (!luad::server::parse_size(memory, run.limits.memory)) {
      std::cerr << "luad run: --memory: cannot read size '" << memory << "' (try 64MiB)\n";
      return luad::server::run_usage;
    }
    return luad::server::run_script(run);
  }
  return luad::server::run_usage;
}

int main(int argc, char** argv) {
  try {
    return run_cli(argc, argv);
  } catch (const std::exception& e) {
    // Startup failures (a broken module declaration, no threads) end here.
    std::cerr << "luad: " << e.what() << '\n';
    return 1;
  }
}
