// Peer and profile checks (access.hpp).
#include "server/access.hpp"

#include <unistd.h>

#include <algorithm>
#include <filesystem>

#include "runtime/code.hpp"
#include "runtime/script_path.hpp"

namespace luad::server {

bool listed(const peer& p, const std::vector<std::uint32_t>& uids,
            const std::vector<std::uint32_t>& gids) {
  return std::find(uids.begin(), uids.end(), p.uid) != uids.end() ||
         std::find(gids.begin(), gids.end(), p.gid) != gids.end();
}

runtime::status may_connect(const server_config& s, const peer& p) {
  if (p.uid == ::geteuid() || p.uid == 0 || listed(p, s.allow_uids, s.allow_gids))
    return runtime::done{};
  return runtime::fail(runtime::error_kind::permission_denied,
                       "uid " + std::to_string(p.uid) + " may not use this daemon");
}

runtime::result<const profile_config*> choose_profile(const config& cfg, std::string name,
                                                      const peer& p) {
  if (name.empty()) name = "default";
  const profile_config* chosen = nullptr;
  for (const auto& pr : cfg.profiles) {
    if (pr.name != name) continue;
    if (!(pr.uids.empty() && pr.gids.empty()) && !listed(p, pr.uids, pr.gids))
      return runtime::fail(runtime::error_kind::permission_denied,
                           "uid " + std::to_string(p.uid) + " may not use profile '" + name + "'");
    chosen = &pr;
  }
  if (!chosen && name != "default")
    return runtime::fail(runtime::error_kind::not_found, "no profile named '" + name + "'");
  return chosen;
}

runtime::account_ptr account_of(runtime::owner_registry& owners, const peer& p,
                                const profile_config* profile, const std::string& profile_name) {
  std::string owner = "uid:" + std::to_string(p.uid);
  std::string name = profile_name.empty() ? "default" : profile_name;
  return owners.account(owner + "/" + name, owner,
                        profile ? profile->quotas : profile_config::default_quotas());
}

runtime::result<actor> actor_of(const peer& p, std::optional<std::uint32_t> as_uid) {
  bool privileged = p.uid == 0 || p.uid == ::geteuid();
  if (!as_uid) return actor{"uid:" + std::to_string(p.uid), privileged, p.uid};
  if (!privileged)
    return runtime::fail(runtime::error_kind::permission_denied,
                         "only root and the daemon's own user may act as another uid");
  return actor{"uid:" + std::to_string(*as_uid), false, *as_uid};
}

runtime::status may_act(const actor& a, const runtime::process_context& target,
                        runtime::owner_verb verb, bool by_name) {
  if (a.privileged) return runtime::done{};
  return runtime::may_act(a.owner, {}, target, verb, by_name);
}

runtime::status may_see_exit(const actor& a, const std::string& owner) {
  if (a.privileged || a.owner == owner) return runtime::done{};
  return runtime::fail(runtime::error_kind::permission_denied,
                       "the exit of a process of " + (owner.empty() ? "the daemon" : owner) +
                           " may not be read by " + a.owner);
}

std::vector<std::string> script_roots(const config& cfg) {
  std::vector<std::string> roots = cfg.script_roots;
  if (roots.empty()) roots.push_back(std::filesystem::path(cfg.path).parent_path().string());
  return roots;
}

runtime::result<script_location> find_script(const config& cfg, const std::string& script) {
  namespace fs = std::filesystem;
  // The file system would read the name only up to a NUL: refuse it whole.
  if (script.find('\0') != std::string::npos)
    return runtime::fail(runtime::error_kind::invalid, "a script name may not contain a NUL byte");
  for (const auto& root : script_roots(cfg)) {
    std::string canon_root = runtime::weakly_canonical(root, "");
    std::string candidate;
    try {
      candidate = runtime::weakly_canonical(root, script);
    } catch (const fs::filesystem_error& e) {  // too long, a loop: the name's fault
      return runtime::script_name_error(script, e.code());
    }
    if (runtime::path_inside(canon_root, candidate) && fs::exists(candidate))
      return script_location{candidate, canon_root};
  }
  return runtime::fail(runtime::error_kind::not_found,
                       "no script '" + script + "' under the script roots");
}

}  // namespace luad::server
