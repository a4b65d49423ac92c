// Who may do what: the peer check at connect and the choice of a profile at
// spawn, both through one uid/gid list check; and which scripts a client may
// name (only those under the script roots).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/result.hpp"
#include "server/config.hpp"

namespace luad::server {

/// A client's credentials, as SO_PEERCRED reports them.
struct peer {
  uid_t uid = 0;
  gid_t gid = 0;
};

/// True when `p`'s uid is in `uids` or its gid in `gids`.
bool listed(const peer& p, const std::vector<std::uint32_t>& uids,
            const std::vector<std::uint32_t>& gids);

/// May `p` use the daemon at all: root, the daemon's own user, or listed in
/// [server] allow_uids / allow_gids. Fails with permission_denied.
runtime::status may_connect(const server_config& s, const peer& p);

/// The profile `name` ("" means "default") for `p`: permission_denied when
/// its uids/gids do not list `p`, not_found when there is none of that name.
/// A "default" that is not configured is no profile (nullptr): no permissions.
runtime::result<const profile_config*> choose_profile(const config& cfg, std::string name,
                                                      const peer& p);

/// The script roots: [scripts] roots, or else the config file's folder.
std::vector<std::string> script_roots(const config& cfg);

/// A script found under a root.
struct script_location {
  std::string path;  ///< canonical
  std::string root;  ///< canonical
};
/// `script` (relative to a root) under the first root that has it, else not_found.
runtime::result<script_location> find_script(const config& cfg, const std::string& script);

}  // namespace luad::server
