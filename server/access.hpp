// Who may do what: the peer check at connect, the choice of a profile (and
// its owner account) at spawn, both through one uid/gid list check; the owner
// rule for a peer acting on processes; and which scripts a client may name
// (only those under the script roots).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "runtime/owners.hpp"
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

/// The account a submission of `p` under `profile` (nullptr: none
/// configured) counts against: one per peer uid and profile, with the
/// profile's quotas.
runtime::account_ptr account_of(runtime::owner_registry& owners, const peer& p,
                                const profile_config* profile, const std::string& profile_name);

/// Who a request acts as, for the owner rule: the peer's owner ("uid:N"),
/// which may act on every process when the peer is root or the daemon's own
/// uid. A privileged peer may ask to act as another uid (`as_uid`): it then
/// is that uid, unprivileged (tools acting for a user; tests).
struct actor {
  std::string owner;
  bool privileged = false;
  uid_t uid = 0;  ///< the uid it acts as (the peer's, or its `as_uid`)
};
/// The actor of `p`, or permission_denied when an unprivileged peer gives
/// `as_uid`.
runtime::result<actor> actor_of(const peer& p, std::optional<std::uint32_t> as_uid);
/// May `a` `verb` a process running under `target` (runtime::may_act with no
/// permissions: a workflow's `controllers` and `reachable` keys are how a
/// peer gets rights over its processes)?
runtime::status may_act(const actor& a, const runtime::process_context& target,
                        runtime::owner_verb verb, bool by_name = false);
/// The same for a process that has ended, known only by its owner's name.
runtime::status may_see_exit(const actor& a, const std::string& owner);

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
