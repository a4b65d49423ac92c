// Owner accounts (quotas), the registry, the cross-owner rule and the
// process:* permissions (runtime/owners.hpp, runtime/permissions.hpp).
#include <doctest/doctest.h>

#include <algorithm>

#include "runtime/owners.hpp"
#include "runtime/permissions.hpp"

using luad::runtime::error_kind;
using luad::runtime::may_act;
using luad::runtime::owner_account;
using luad::runtime::owner_quotas;
using luad::runtime::owner_verb;
using luad::runtime::process_context;

TEST_CASE("an owner account counts processes, memory and timers against its quotas") {
  owner_account a("uid:7", owner_quotas{2, 100, 1});
  CHECK(a.try_add_process(40).ok());
  CHECK(a.try_add_process(40).ok());
  auto third = a.try_add_process(1);
  REQUIRE_FALSE(third.ok());
  CHECK(third.error().kind == error_kind::limit);
  CHECK(a.processes() == 2);
  a.remove_process(40);
  auto fat = a.try_add_process(61);  // 40 + 61 > 100
  REQUIRE_FALSE(fat.ok());
  CHECK(fat.error().message.find("memory quota") != std::string::npos);
  CHECK(a.processes() == 1);  // a refused spawn counts nothing
  CHECK(a.memory() == 40);
  CHECK_FALSE(a.try_add_process(0).ok());  // no memory limit cannot fit a memory quota
  CHECK(a.try_add_timer());
  CHECK_FALSE(a.try_add_timer());
  a.remove_timer();
  CHECK(a.try_add_timer());
  a.set_quotas({});  // 0: unlimited
  CHECK(a.try_add_process(0).ok());
  CHECK(a.try_add_timer());
}

TEST_CASE("a stopping account refuses new processes until its last one has ended") {
  owner_account a("uid:7", owner_quotas{});
  a.begin_stop();  // nothing live: nothing to stop, it stays open
  CHECK_FALSE(a.stopping());
  REQUIRE(a.try_add_process(0).ok());
  REQUIRE(a.try_add_process(0).ok());
  a.begin_stop();
  CHECK(a.stopping());
  auto refused = a.try_add_process(0);
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.error().kind == error_kind::unavailable);
  CHECK(refused.error().retryable);
  CHECK(refused.error().message.find("being stopped") != std::string::npos);
  CHECK(a.processes() == 2);  // the refusal counted nothing
  a.remove_process(0);
  CHECK(a.stopping());  // one is still live
  a.remove_process(0);
  CHECK_FALSE(a.stopping());
  CHECK(a.try_add_process(0).ok());
}

TEST_CASE("the owner registry lists every account of one owner") {
  luad::runtime::owner_registry r;
  auto a = r.account("uid:1/default", "uid:1", {});
  auto b = r.account("uid:1/ops", "uid:1", {});
  r.account("uid:2/default", "uid:2", {});
  auto found = r.accounts_of("uid:1");
  CHECK(found.size() == 2);
  CHECK(std::count(found.begin(), found.end(), a) == 1);
  CHECK(std::count(found.begin(), found.end(), b) == 1);
  CHECK(r.accounts_of("uid:3").empty());
}

TEST_CASE("the owner registry hands out one account per key and updates its quotas") {
  luad::runtime::owner_registry r;
  auto a = r.account("uid:1/default", "uid:1", {5, 0, 0});
  auto b = r.account("uid:1/default", "uid:1", {7, 0, 0});
  CHECK(a == b);
  CHECK(a->quotas().processes == 7);
  CHECK(r.account("uid:1/ops", "uid:1", {}) != a);
  CHECK(r.account("workflow:w", "workflow:w", {}, true)->keeps_names());
}

TEST_CASE("the owner rule: one owner, permissions, and the target's consent") {
  process_context alice, bob;
  alice.owner = "uid:1";
  bob.owner = "workflow:bob";
  CHECK(may_act(alice, alice, owner_verb::control).ok());
  auto refused = may_act(alice, bob, owner_verb::control);
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.error().kind == error_kind::permission_denied);
  CHECK(refused.error().message.find("workflow:bob") != std::string::npos);
  CHECK_FALSE(may_act(alice, bob, owner_verb::send).ok());
  CHECK_FALSE(may_act(alice, bob, owner_verb::send, true).ok());

  alice.permissions = {"process:send"};
  CHECK(may_act(alice, bob, owner_verb::send).ok());
  CHECK_FALSE(may_act(alice, bob, owner_verb::control).ok());
  alice.permissions = {"process:control:workflow:other"};
  CHECK_FALSE(may_act(alice, bob, owner_verb::control).ok());
  alice.permissions = {"process:control:workflow:bob"};
  CHECK(may_act(alice, bob, owner_verb::control).ok());
  CHECK(may_act(alice, bob, owner_verb::send).ok());  // control covers send
  alice.permissions.clear();

  bob.reachable_by = {"*"};
  CHECK(may_act(alice, bob, owner_verb::send, true).ok());  // by name only
  CHECK_FALSE(may_act(alice, bob, owner_verb::send, false).ok());
  CHECK_FALSE(may_act(alice, bob, owner_verb::control).ok());
  CHECK(may_act(bob, alice, owner_verb::send).ok());  // the service answers
  CHECK_FALSE(may_act(bob, alice, owner_verb::control).ok());
  bob.controlled_by = {"uid:1"};
  CHECK(may_act(alice, bob, owner_verb::control).ok());
  CHECK(may_act("uid:1", {}, bob, owner_verb::control).ok());
  CHECK_FALSE(may_act("uid:2", {}, bob, owner_verb::control).ok());
}

TEST_CASE("process:* permissions parse strictly") {
  using luad::runtime::check_permission;
  CHECK(check_permission("process:control").empty());
  CHECK(check_permission("process:send").empty());
  CHECK(check_permission("process:control:uid:1000").empty());
  CHECK(check_permission("process:send:workflow:ticker").empty());
  CHECK_FALSE(check_permission("process:kill").empty());
  CHECK_FALSE(check_permission("process:control:").empty());
  CHECK_FALSE(check_permission("process:control:uid:x").empty());
  CHECK_FALSE(check_permission("process:control:bob").empty());
  CHECK(luad::runtime::allows_process({"process:control"}, "send", "uid:3"));
  CHECK_FALSE(luad::runtime::allows_process({"process:send"}, "control", "uid:3"));
  CHECK_FALSE(luad::runtime::allows_process({"process:send:uid:33"}, "send", "uid:3"));
}
