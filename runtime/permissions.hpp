// Permission strings a process carries in its context, and the checks modules
// make before acting. A process has no permissions unless granted (luad run
// --allow, a workflow's config); children inherit their parent's.
//
//   http:HOST          requests to HOST on any port (HOST may be an IP)
//   http:HOST:PORT     requests to HOST on PORT only
//   http:*             requests to any host
//   http:insecure      may turn TLS verification off (tls = {verify = false})
//   store:NAMESPACE    may read and write keys in NAMESPACE
//   process:control          may kill, cancel, link to, monitor and inspect
//                            processes of any owner (see runtime/owners.hpp)
//   process:control:OWNER    the same, over processes of OWNER only
//                            ("uid:1000", "workflow:ticker")
//   process:send             may send messages to processes of any owner
//   process:send:OWNER       to processes of OWNER only
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace luad::runtime {

using permission_list = std::vector<std::string>;

/// True for the owner names the daemon gives processes: "uid:N", "workflow:NAME".
bool valid_owner(std::string_view owner);

/// Empty when `text` is a well-formed permission, else why not (for --allow
/// and config files, so a typo fails loudly instead of granting nothing).
std::string check_permission(std::string_view text);

/// May the process connect to `host`:`port` over HTTP(S)? Host names compare
/// case-insensitively.
bool allows_http(const permission_list& perms, std::string_view host, std::uint16_t port);
/// May the process turn TLS certificate verification off?
bool allows_insecure_tls(const permission_list& perms);
/// May the process use store namespace `ns`?
bool allows_store(const permission_list& perms, std::string_view ns);
/// May the process do `verb` ("control" or "send") to a process owned by
/// `owner`? Granted by "process:VERB" or "process:VERB:OWNER"; "process:control"
/// implies "process:send".
bool allows_process(const permission_list& perms, std::string_view verb, std::string_view owner);
/// The first namespace granted (the process's default one), if any.
std::optional<std::string> default_store_namespace(const permission_list& perms);

}  // namespace luad::runtime
