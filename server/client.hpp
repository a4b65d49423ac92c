// The client side of `luad`: commands that talk to a running daemon over its
// Unix socket (proto/PROTOCOL.md) and print the answer.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace luad::server {

/// One client command and its arguments, from the command line.
struct client_request {
  std::string command;          ///< submit | ps | info | kill | send | cancel | workflows | stats |
                                ///< logs | reload | ping
  std::string socket;           ///< empty: default_socket()
  bool json = false;            ///< print the raw JSON result
  std::string format = "text";  ///< stats: text | json | prometheus
  std::string file;             ///< submit: the script, sent as source
  std::vector<std::string> args;
  std::string profile;
  bool wait = false;
  std::string pid;                ///< info, kill; send and cancel: a pid or a registered name
  std::string topic;              ///< send
  std::string payload = "null";   ///< send: JSON text
  std::string reason;             ///< kill
  std::string owner;              ///< kill: every process of this owner instead of `pid`
  std::string status;             ///< ps: only processes in this state
  std::string workflow;           ///< ps: only processes of this workflow
  std::string level;              ///< logs: lowest level shown (default: the daemon's)
  bool follow = true;             ///< logs: keep printing new lines until the exit
  std::int64_t memory = 0;        ///< submit: tighter memory limit in bytes (0: the default)
  std::int64_t instructions = 0;  ///< submit: tighter instruction limit (0: the default)
  bool durable = false;           ///< submit: a durable run (journaled, resumed after a restart)
  std::string
      action;        ///< workflows: start, stop, restart, history, resume, terminate (empty: list)
  std::string name;  ///< workflows: which one (a workflow's name, or a durable run's id)
};

/// $LUAD_SOCKET, else configs/run/luad.sock when it exists (a checkout
/// running the shipped config), else /run/luad/luad.sock.
std::string default_socket();

/// Sends the request and prints the reply. Exit codes: 0 done; 1 the daemon
/// refused or the submitted process failed; 2 usage; 3 the process hit a
/// limit; 4 it was killed; 5 the daemon cannot be reached.
int client_command(const client_request& req);

}  // namespace luad::server
