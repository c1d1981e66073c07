// The shared AccountStore suite: every backend must pass it. Backends are
// registered once in store_backends.cc; the suite runs against each
// registered name. Storage only: the rules built on these rows are auth_test's.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <set>
#include <thread>

#include "meta/account_store.h"
#include "store_backends.h"

// Records are built with designated initializers; the fields they leave out
// are meant to keep their defaults (GCC 12 warns even so).
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

using namespace wharf;
namespace tb = wharf::testing_backends;
using meta::Role;
using meta::SubjectKind;
using meta::TeamRole;

namespace {

int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

template <class T, class F>
std::vector<std::string> names_of(const std::vector<T>& v, F name) {
  std::vector<std::string> out;
  for (const auto& x : v) out.push_back(name(x));
  std::sort(out.begin(), out.end());
  return out;
}
std::vector<std::string> account_names(const std::vector<meta::Account>& v) {
  return names_of(v, [](const meta::Account& a) { return a.name; });
}
std::vector<std::string> perm_repos(const std::vector<meta::Permission>& v) {
  return names_of(v, [](const meta::Permission& p) { return p.repo; });
}

class AccountSuite : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override { acc_ = open(); }
  void TearDown() override { acc_.reset(); }
  // Opens the backend on this test's data again (a restart, or a second
  // process sharing the store).
  std::unique_ptr<meta::AccountStore> open() { return tb::account_backend(GetParam()).open(dir_.path()); }

  int64_t user(const std::string& name, bool superuser = false) {
    return acc_->create_account(
        {.name = name, .email = name + "@example.com", .password_hash = "hash-" + name, .superuser = superuser});
  }
  int64_t org(const std::string& name) { return acc_->create_account({.name = name, .is_org = true}); }
  int64_t team(int64_t org_id, const std::string& name, TeamRole role = TeamRole::Member) {
    return acc_->create_team({.org_id = org_id, .name = name, .role = role, .description = name + " team"});
  }
  int64_t robot(int64_t owner_id, const std::string& short_name) {
    return acc_->create_robot({.owner_id = owner_id, .short_name = short_name, .token_sealed = "sealed-" + short_name});
  }
  void repo(const std::string& name) { acc_->put_repo_settings({.name = name}); }
  void session(const std::string& id, int64_t user_id, int64_t expires = 4102444800) {
    acc_->create_session({.id_hash = id, .user_id = user_id, .csrf = "csrf-" + id, .generation = 1, .expires = expires});
  }
  int64_t api_token(int64_t user_id, const std::string& hash) {
    return acc_->create_api_token({.user_id = user_id, .name = "tok-" + hash, .token_hash = hash});
  }
  std::vector<std::string> member_names(int64_t team_id) {
    return names_of(acc_->team_members(team_id), [](const meta::Member& m) { return m.name; });
  }
  static meta::AuditEvent event(std::string action, std::string ns = "", std::string repo = "") {
    return {.time_ms = 1000, .actor = "alice", .actor_kind = "user", .action = std::move(action), .ns = std::move(ns),
            .repo = std::move(repo), .detail = R"({"k":1})", .address = "192.0.2.1"};
  }
  std::vector<std::string> audit_actions(const meta::AuditQuery& q) {
    std::vector<std::string> out;
    for (const auto& e : acc_->audit(q)) out.push_back(e.action);
    return out;
  }

  tb::TempDir dir_{"wharf-accounts"};
  std::unique_ptr<meta::AccountStore> acc_;
};

// ---- accounts ------------------------------------------------------------

TEST_P(AccountSuite, CreatedAccountIsFoundByNameAndById) {
  int64_t t0 = unix_now();
  int64_t id = user("alice", true);
  int64_t t1 = unix_now();
  auto a = acc_->account("alice");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->id, id);
  EXPECT_EQ(a->name, "alice");
  EXPECT_FALSE(a->is_org);
  EXPECT_EQ(a->email, "alice@example.com");
  EXPECT_EQ(a->password_hash, "hash-alice");
  EXPECT_TRUE(a->superuser);
  EXPECT_FALSE(a->disabled);
  EXPECT_NE(a->generation, 0);
  EXPECT_NE(a->uid, 0);
  EXPECT_GE(a->created, t0);
  EXPECT_LE(a->created, t1);
  auto b = acc_->account_by_id(id);
  ASSERT_TRUE(b);
  EXPECT_EQ(b->name, "alice");
  EXPECT_EQ(b->uid, a->uid);
  EXPECT_FALSE(acc_->account("bob"));
  EXPECT_FALSE(acc_->account("Alice"));
  EXPECT_FALSE(acc_->account_by_id(id + 1000));
}

TEST_P(AccountSuite, OrganizationIsAnAccountWithoutPassword) {
  int64_t id = org("acme");
  auto o = acc_->account_by_id(id);
  ASSERT_TRUE(o);
  EXPECT_EQ(o->name, "acme");
  EXPECT_TRUE(o->is_org);
  EXPECT_EQ(o->password_hash, "");
  EXPECT_FALSE(o->superuser);
}

TEST_P(AccountSuite, NamesAreUniqueAcrossUsersAndOrganizations) {
  user("alice");
  org("acme");
  EXPECT_THROW(user("alice"), meta::Conflict);
  EXPECT_THROW(org("alice"), meta::Conflict);
  EXPECT_THROW(user("acme"), meta::Conflict);
  EXPECT_THROW(org("acme"), meta::Conflict);
  EXPECT_EQ(acc_->user_count(), 1u);
  EXPECT_EQ(acc_->accounts(true).size(), 1u);
  EXPECT_EQ(acc_->account("alice")->email, "alice@example.com");  // the first one stays
}

TEST_P(AccountSuite, AccountsListsUsersOrOrganizationsByName) {
  for (auto n : {"carol", "alice", "bob"}) user(n);
  for (auto n : {"zorg", "acme"}) org(n);
  std::vector<std::string> users, orgs;
  for (const auto& a : acc_->accounts(false)) users.push_back(a.name);
  for (const auto& a : acc_->accounts(true)) orgs.push_back(a.name);
  EXPECT_EQ(users, (std::vector<std::string>{"alice", "bob", "carol"}));
  EXPECT_EQ(orgs, (std::vector<std::string>{"acme", "zorg"}));
  EXPECT_EQ(acc_->user_count(), 3u);  // organizations are not users
}

TEST_P(AccountSuite, EmptyStoreHasNoUsers) {
  EXPECT_EQ(acc_->user_count(), 0u);
  EXPECT_TRUE(acc_->accounts(false).empty());
  EXPECT_TRUE(acc_->accounts(true).empty());
}

TEST_P(AccountSuite, SetPasswordStoresTheHashBumpsTheGenerationAndEndsSessionsAndTokens) {
  int64_t alice = user("alice"), bob = user("bob");
  int64_t gen = acc_->account_by_id(alice)->generation;
  session("s-alice", alice);
  session("s-bob", bob);
  api_token(alice, "h-alice");
  api_token(bob, "h-bob");
  acc_->set_password(alice, "new-hash");
  auto a = acc_->account_by_id(alice);
  EXPECT_EQ(a->password_hash, "new-hash");
  EXPECT_NE(a->generation, gen);
  EXPECT_FALSE(acc_->session("s-alice"));
  EXPECT_FALSE(acc_->api_token_by_hash("h-alice"));
  EXPECT_TRUE(acc_->api_tokens(alice).empty());
  // Bob keeps his.
  EXPECT_TRUE(acc_->session("s-bob"));
  EXPECT_TRUE(acc_->api_token_by_hash("h-bob"));
  EXPECT_EQ(acc_->account_by_id(bob)->password_hash, "hash-bob");
}

TEST_P(AccountSuite, SetEmailChangesOnlyTheEmail) {
  int64_t alice = user("alice");
  acc_->set_email(alice, "new@example.org");
  auto a = acc_->account_by_id(alice);
  EXPECT_EQ(a->email, "new@example.org");
  EXPECT_EQ(a->password_hash, "hash-alice");
  EXPECT_EQ(a->name, "alice");
}

TEST_P(AccountSuite, DisablingAndEnablingBumpTheGenerationAndEndSessionsAndTokens) {
  int64_t alice = user("alice");
  int64_t g0 = acc_->account_by_id(alice)->generation;
  session("s1", alice);
  api_token(alice, "h1");
  acc_->set_disabled(alice, true);
  auto a = acc_->account_by_id(alice);
  EXPECT_TRUE(a->disabled);
  EXPECT_NE(a->generation, g0);
  EXPECT_FALSE(acc_->session("s1"));
  EXPECT_FALSE(acc_->api_token_by_hash("h1"));
  int64_t g1 = a->generation;
  session("s2", alice);
  api_token(alice, "h2");
  acc_->set_disabled(alice, false);
  a = acc_->account_by_id(alice);
  EXPECT_FALSE(a->disabled);
  EXPECT_NE(a->generation, g1);
  EXPECT_NE(a->generation, g0);
  EXPECT_FALSE(acc_->session("s2"));
  EXPECT_FALSE(acc_->api_token_by_hash("h2"));
  EXPECT_EQ(a->password_hash, "hash-alice");  // the password stays
}

TEST_P(AccountSuite, ARecreatedNameIsANewIdentity) {
  int64_t id = user("bob");
  auto old = *acc_->account_by_id(id);
  EXPECT_TRUE(acc_->delete_account(id));
  EXPECT_FALSE(acc_->account("bob"));
  EXPECT_FALSE(acc_->account_by_id(id));
  EXPECT_FALSE(acc_->delete_account(id));
  user("bob");  // the name is free again
  auto fresh = *acc_->account("bob");
  EXPECT_NE(fresh.uid, old.uid);  // never reused
  EXPECT_NE(fresh.generation, old.generation);
}

TEST_P(AccountSuite, DeletingAnOrganizationRemovesItsTeamsRobotsAndRepositoryGrants) {
  int64_t alice = user("alice");
  int64_t acme = org("acme");
  int64_t devs = team(acme, "devs", TeamRole::Admin);
  acc_->add_team_member(devs, SubjectKind::User, alice);
  int64_t ci = robot(acme, "ci");
  acc_->add_team_member(devs, SubjectKind::Robot, ci);
  repo("acme/app");
  repo("other/lib");
  acc_->set_permission("acme/app", SubjectKind::User, alice, Role::Write);
  acc_->set_permission("acme/app", SubjectKind::Team, devs, Role::Read);
  acc_->set_permission("other/lib", SubjectKind::Robot, ci, Role::Read);
  acc_->set_permission("other/lib", SubjectKind::Team, devs, Role::Write);
  acc_->set_permission("other/lib", SubjectKind::User, alice, Role::Admin);
  acc_->set_default_permission(acme, SubjectKind::User, alice, Role::Read);

  EXPECT_TRUE(acc_->delete_account(acme));
  EXPECT_FALSE(acc_->account("acme"));
  EXPECT_TRUE(acc_->teams(acme).empty());
  EXPECT_FALSE(acc_->team(acme, "devs"));
  EXPECT_TRUE(acc_->team_members(devs).empty());
  EXPECT_FALSE(acc_->robot("acme+ci"));
  EXPECT_FALSE(acc_->robot_by_id(ci));
  EXPECT_TRUE(acc_->robots(acme).empty());
  EXPECT_TRUE(acc_->permissions("acme/app").empty());  // every grant on its repositories
  EXPECT_TRUE(acc_->default_permissions(acme).empty());
  EXPECT_TRUE(acc_->permissions_of(SubjectKind::Robot, ci).empty());  // grants naming its robots and teams
  EXPECT_TRUE(acc_->permissions_of(SubjectKind::Team, devs).empty());
  EXPECT_TRUE(acc_->organizations_of(SubjectKind::User, alice).empty());  // memberships
  EXPECT_FALSE(acc_->team_role(acme, SubjectKind::User, alice));
  // Alice, and her grant outside the namespace, stay.
  EXPECT_TRUE(acc_->account("alice"));
  auto left = acc_->permissions("other/lib");
  ASSERT_EQ(left.size(), 1u);
  EXPECT_EQ(left[0].subject, "alice");
  EXPECT_EQ(left[0].role, Role::Admin);
  // The name is free; its successor starts with nothing.
  int64_t acme2 = org("acme");
  EXPECT_TRUE(acc_->teams(acme2).empty());
  EXPECT_TRUE(acc_->robots(acme2).empty());
  EXPECT_FALSE(acc_->robot("acme+ci"));
  EXPECT_TRUE(acc_->permissions("acme/app").empty());
}

TEST_P(AccountSuite, DeletingAUserRemovesItsTokensSessionsMembershipsAndGrants) {
  int64_t alice = user("alice"), bob = user("bob");
  int64_t acme = org("acme");
  int64_t devs = team(acme, "devs");
  acc_->add_team_member(devs, SubjectKind::User, alice);
  acc_->add_team_member(devs, SubjectKind::User, bob);
  int64_t bot = robot(alice, "bot");
  session("s-alice", alice);
  api_token(alice, "h-alice");
  repo("acme/app");
  repo("alice/own");
  acc_->set_permission("acme/app", SubjectKind::User, alice, Role::Write);
  acc_->set_permission("acme/app", SubjectKind::Robot, bot, Role::Read);
  acc_->set_permission("alice/own", SubjectKind::User, bob, Role::Read);
  acc_->set_default_permission(acme, SubjectKind::User, alice, Role::Read);

  EXPECT_TRUE(acc_->delete_account(alice));
  EXPECT_FALSE(acc_->account("alice"));
  EXPECT_FALSE(acc_->session("s-alice"));
  EXPECT_FALSE(acc_->api_token_by_hash("h-alice"));
  EXPECT_TRUE(acc_->api_tokens(alice).empty());
  EXPECT_FALSE(acc_->robot("alice+bot"));
  EXPECT_EQ(member_names(devs), std::vector<std::string>{"bob"});
  EXPECT_TRUE(acc_->permissions("acme/app").empty());  // hers and her robot's
  EXPECT_TRUE(acc_->permissions("alice/own").empty());  // every grant on her repositories
  EXPECT_TRUE(acc_->default_permissions(acme).empty());
  EXPECT_EQ(acc_->explicit_role("acme/app", SubjectKind::User, alice), Role::None);
  EXPECT_EQ(acc_->user_count(), 1u);
}

// ---- teams ---------------------------------------------------------------

TEST_P(AccountSuite, TeamIsFoundByNameInItsOrganization) {
  int64_t acme = org("acme"), zorg = org("zorg");
  int64_t id = team(acme, "devs", TeamRole::Creator);
  auto t = acc_->team(acme, "devs");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->id, id);
  EXPECT_EQ(t->org_id, acme);
  EXPECT_EQ(t->name, "devs");
  EXPECT_EQ(t->role, TeamRole::Creator);
  EXPECT_EQ(t->description, "devs team");
  EXPECT_FALSE(acc_->team(zorg, "devs"));
  EXPECT_FALSE(acc_->team(acme, "ops"));
  EXPECT_THROW(team(acme, "devs"), meta::Conflict);
  int64_t other = team(zorg, "devs");  // the same name in another organization
  EXPECT_NE(other, id);
  team(acme, "admins", TeamRole::Admin);
  EXPECT_EQ(names_of(acc_->teams(acme), [](const meta::Team& x) { return x.name; }),
            (std::vector<std::string>{"admins", "devs"}));
  EXPECT_EQ(acc_->teams(zorg).size(), 1u);
}

TEST_P(AccountSuite, UpdateTeamChangesRoleAndDescription) {
  int64_t acme = org("acme");
  int64_t id = team(acme, "devs");
  auto t = *acc_->team(acme, "devs");
  t.role = TeamRole::Admin;
  t.description = "now in charge";
  acc_->update_team(t);
  auto got = acc_->team(acme, "devs");
  ASSERT_TRUE(got);
  EXPECT_EQ(got->id, id);
  EXPECT_EQ(got->role, TeamRole::Admin);
  EXPECT_EQ(got->description, "now in charge");
}

TEST_P(AccountSuite, TeamMembersAreUsersAndRobotsWithTheirNames) {
  int64_t acme = org("acme");
  int64_t alice = user("alice");
  int64_t ci = robot(acme, "ci");
  int64_t devs = team(acme, "devs");
  acc_->add_team_member(devs, SubjectKind::User, alice);
  acc_->add_team_member(devs, SubjectKind::User, alice);  // twice is once
  acc_->add_team_member(devs, SubjectKind::Robot, ci);
  auto members = acc_->team_members(devs);
  ASSERT_EQ(members.size(), 2u);
  std::set<std::tuple<SubjectKind, int64_t, std::string>> got;
  for (const auto& m : members) got.insert({m.kind, m.id, m.name});
  EXPECT_EQ(got, (std::set<std::tuple<SubjectKind, int64_t, std::string>>{{SubjectKind::User, alice, "alice"},
                                                                         {SubjectKind::Robot, ci, "acme+ci"}}));
  EXPECT_TRUE(acc_->remove_team_member(devs, SubjectKind::User, alice));
  EXPECT_FALSE(acc_->remove_team_member(devs, SubjectKind::User, alice));
  EXPECT_EQ(member_names(devs), std::vector<std::string>{"acme+ci"});
}

TEST_P(AccountSuite, TeamRoleIsTheHighestOfTheSubjectsTeamsInThatOrganization) {
  int64_t acme = org("acme"), zorg = org("zorg");
  int64_t alice = user("alice");
  int64_t ci = robot(acme, "ci");
  int64_t members = team(acme, "members", TeamRole::Member);
  int64_t admins = team(acme, "admins", TeamRole::Admin);
  int64_t zorg_creators = team(zorg, "creators", TeamRole::Creator);
  EXPECT_FALSE(acc_->team_role(acme, SubjectKind::User, alice));
  acc_->add_team_member(members, SubjectKind::User, alice);
  EXPECT_EQ(acc_->team_role(acme, SubjectKind::User, alice), TeamRole::Member);
  acc_->add_team_member(admins, SubjectKind::User, alice);
  EXPECT_EQ(acc_->team_role(acme, SubjectKind::User, alice), TeamRole::Admin);
  acc_->add_team_member(zorg_creators, SubjectKind::User, alice);
  EXPECT_EQ(acc_->team_role(zorg, SubjectKind::User, alice), TeamRole::Creator);
  acc_->remove_team_member(admins, SubjectKind::User, alice);
  EXPECT_EQ(acc_->team_role(acme, SubjectKind::User, alice), TeamRole::Member);
  acc_->add_team_member(admins, SubjectKind::Robot, ci);
  EXPECT_EQ(acc_->team_role(acme, SubjectKind::Robot, ci), TeamRole::Admin);
}

TEST_P(AccountSuite, OrganizationsOfListsEachOrganizationWhereTheSubjectIsOnATeam) {
  int64_t acme = org("acme"), zorg = org("zorg");
  org("empty");
  int64_t alice = user("alice");
  acc_->add_team_member(team(acme, "a"), SubjectKind::User, alice);
  acc_->add_team_member(team(acme, "b"), SubjectKind::User, alice);
  acc_->add_team_member(team(zorg, "c"), SubjectKind::User, alice);
  EXPECT_EQ(account_names(acc_->organizations_of(SubjectKind::User, alice)),
            (std::vector<std::string>{"acme", "zorg"}));  // acme once, though on two teams
  int64_t bot = robot(acme, "bot");
  EXPECT_TRUE(acc_->organizations_of(SubjectKind::Robot, bot).empty());
  acc_->add_team_member(acc_->team(zorg, "c")->id, SubjectKind::Robot, bot);
  EXPECT_EQ(account_names(acc_->organizations_of(SubjectKind::Robot, bot)), std::vector<std::string>{"zorg"});
}

TEST_P(AccountSuite, DeletedTeamIsGoneAndGrantsNothing) {
  int64_t acme = org("acme");
  int64_t alice = user("alice");
  int64_t devs = team(acme, "devs");
  acc_->add_team_member(devs, SubjectKind::User, alice);
  repo("acme/app");
  acc_->set_permission("acme/app", SubjectKind::Team, devs, Role::Write);
  ASSERT_EQ(acc_->explicit_role("acme/app", SubjectKind::User, alice), Role::Write);
  EXPECT_TRUE(acc_->delete_team(devs));
  EXPECT_FALSE(acc_->delete_team(devs));
  EXPECT_FALSE(acc_->team(acme, "devs"));
  EXPECT_TRUE(acc_->teams(acme).empty());
  EXPECT_EQ(acc_->explicit_role("acme/app", SubjectKind::User, alice), Role::None);
  EXPECT_FALSE(acc_->team_role(acme, SubjectKind::User, alice));
  EXPECT_TRUE(acc_->organizations_of(SubjectKind::User, alice).empty());
  // A new team of the same name starts without the old one's grants or members.
  int64_t again = team(acme, "devs");
  EXPECT_TRUE(acc_->team_members(again).empty());
  EXPECT_EQ(acc_->explicit_role("acme/app", SubjectKind::Team, again), Role::None);
}

// ---- robots --------------------------------------------------------------

TEST_P(AccountSuite, RobotIsFoundByFullNameAndById) {
  int64_t acme = org("acme");
  std::string sealed("\x00\x01sealed\xff", 9);  // opaque bytes
  int64_t t0 = unix_now();
  int64_t id = acc_->create_robot({.owner_id = acme, .short_name = "ci", .token_sealed = sealed, .description = "CI"});
  int64_t t1 = unix_now();
  auto r = acc_->robot("acme+ci");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->id, id);
  EXPECT_EQ(r->owner_id, acme);
  EXPECT_EQ(r->ns, "acme");
  EXPECT_EQ(r->short_name, "ci");
  EXPECT_EQ(r->full_name(), "acme+ci");
  EXPECT_EQ(r->token_sealed, sealed);
  EXPECT_EQ(r->description, "CI");
  EXPECT_NE(r->generation, 0);
  EXPECT_GE(r->created, t0);
  EXPECT_LE(r->created, t1);
  auto by_id = acc_->robot_by_id(id);
  ASSERT_TRUE(by_id);
  EXPECT_EQ(by_id->full_name(), "acme+ci");
  EXPECT_EQ(by_id->token_sealed, sealed);
  EXPECT_FALSE(acc_->robot("acme+cd"));
  EXPECT_FALSE(acc_->robot("zorg+ci"));
  EXPECT_FALSE(acc_->robot("acmeci"));
  EXPECT_FALSE(acc_->robot_by_id(id + 1000));
}

TEST_P(AccountSuite, RobotNamesAreUniquePerNamespace) {
  int64_t acme = org("acme"), alice = user("alice");
  robot(acme, "ci");
  EXPECT_THROW(robot(acme, "ci"), meta::Conflict);
  robot(alice, "ci");  // another namespace
  robot(acme, "a-deployer");
  EXPECT_EQ(names_of(acc_->robots(acme), [](const meta::Robot& r) { return r.full_name(); }),
            (std::vector<std::string>{"acme+a-deployer", "acme+ci"}));
  EXPECT_EQ(names_of(acc_->robots(alice), [](const meta::Robot& r) { return r.full_name(); }),
            std::vector<std::string>{"alice+ci"});
  EXPECT_TRUE(acc_->robots(alice + acme + 1000).empty());
}

TEST_P(AccountSuite, SetRobotTokenStoresTheNewSealAndBumpsTheGeneration) {
  int64_t acme = org("acme");
  int64_t id = robot(acme, "ci"), other = robot(acme, "cd");
  auto before = *acc_->robot_by_id(id);
  auto other_before = *acc_->robot_by_id(other);
  acc_->set_robot_token(id, "sealed-2");
  auto after = *acc_->robot_by_id(id);
  EXPECT_EQ(after.token_sealed, "sealed-2");
  EXPECT_NE(after.generation, before.generation);
  auto other_after = *acc_->robot_by_id(other);
  EXPECT_EQ(other_after.token_sealed, other_before.token_sealed);
  EXPECT_EQ(other_after.generation, other_before.generation);
}

TEST_P(AccountSuite, DeletedRobotIsGoneAndARecreatedOneIsANewCredential) {
  int64_t acme = org("acme");
  int64_t id = robot(acme, "ci");
  int64_t gen = acc_->robot_by_id(id)->generation;
  EXPECT_TRUE(acc_->delete_robot(id));
  EXPECT_FALSE(acc_->delete_robot(id));
  EXPECT_FALSE(acc_->robot("acme+ci"));
  EXPECT_FALSE(acc_->robot_by_id(id));
  EXPECT_TRUE(acc_->robots(acme).empty());
  int64_t again = robot(acme, "ci");
  EXPECT_NE(acc_->robot_by_id(again)->generation, gen);  // tokens of the old one never match
}

// ---- repository settings -------------------------------------------------

TEST_P(AccountSuite, RepoSettingsAreInsertedThenReplacedKeepingTheIdentity) {
  EXPECT_FALSE(acc_->repo_settings("acme/app"));
  acc_->put_repo_settings({.name = "acme/app", .is_public = true, .description = "first", .auto_prime = true});
  auto s = acc_->repo_settings("acme/app");
  ASSERT_TRUE(s);
  EXPECT_EQ(s->name, "acme/app");
  EXPECT_TRUE(s->is_public);
  EXPECT_EQ(s->description, "first");
  EXPECT_TRUE(s->auto_prime);
  EXPECT_NE(s->uid, 0);
  EXPECT_GT(s->created, 0);
  acc_->put_repo_settings({.name = "acme/app", .is_public = false, .description = "second", .auto_prime = false,
                           .created = s->created});
  auto t = acc_->repo_settings("acme/app");
  ASSERT_TRUE(t);
  EXPECT_FALSE(t->is_public);
  EXPECT_EQ(t->description, "second");
  EXPECT_FALSE(t->auto_prime);
  EXPECT_EQ(t->uid, s->uid);  // kept by updates
  EXPECT_FALSE(acc_->repo_settings("acme/other"));
}

TEST_P(AccountSuite, CreateRepoInsertsAndGrantsOnlyOnce) {
  int64_t alice = user("alice"), bob = user("bob");
  std::vector<meta::Permission> grants{{.kind = SubjectKind::User, .subject_id = alice, .role = Role::Admin}};
  EXPECT_TRUE(acc_->create_repo({.name = "alice/app", .description = "mine"}, grants));
  auto s = acc_->repo_settings("alice/app");
  ASSERT_TRUE(s);
  EXPECT_EQ(s->description, "mine");
  EXPECT_EQ(acc_->explicit_role("alice/app", SubjectKind::User, alice), Role::Admin);
  // A second create changes nothing.
  std::vector<meta::Permission> other{{.kind = SubjectKind::User, .subject_id = bob, .role = Role::Write}};
  EXPECT_FALSE(acc_->create_repo({.name = "alice/app", .is_public = true, .description = "theirs"}, other));
  auto t = acc_->repo_settings("alice/app");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->description, "mine");
  EXPECT_FALSE(t->is_public);
  EXPECT_EQ(t->uid, s->uid);
  EXPECT_EQ(acc_->explicit_role("alice/app", SubjectKind::User, bob), Role::None);
  auto perms = acc_->permissions("alice/app");
  ASSERT_EQ(perms.size(), 1u);
  EXPECT_EQ(perms[0].subject, "alice");
}

TEST_P(AccountSuite, DeleteRepoRemovesTheSettingsAndEveryPermission) {
  int64_t alice = user("alice");
  int64_t acme = org("acme");
  int64_t devs = team(acme, "devs");
  acc_->add_team_member(devs, SubjectKind::User, alice);
  repo("acme/app");
  repo("acme/lib");
  acc_->set_permission("acme/app", SubjectKind::User, alice, Role::Admin);
  acc_->set_permission("acme/app", SubjectKind::Team, devs, Role::Read);
  acc_->set_permission("acme/lib", SubjectKind::User, alice, Role::Read);
  EXPECT_TRUE(acc_->delete_repo("acme/app"));
  EXPECT_FALSE(acc_->repo_settings("acme/app"));
  EXPECT_TRUE(acc_->permissions("acme/app").empty());
  EXPECT_EQ(acc_->explicit_role("acme/app", SubjectKind::User, alice), Role::None);
  EXPECT_EQ(perm_repos(acc_->permissions_of(SubjectKind::User, alice)), std::vector<std::string>{"acme/lib"});
  EXPECT_TRUE(acc_->repo_settings("acme/lib"));
  EXPECT_FALSE(acc_->delete_repo("acme/app"));
  // Created again, it is a new repository: nobody's old grant comes back.
  EXPECT_TRUE(acc_->create_repo({.name = "acme/app"}, {}));
  EXPECT_TRUE(acc_->permissions("acme/app").empty());
}

TEST_P(AccountSuite, ListRepoSettingsPagesOneNamespaceByName) {
  for (auto n : {"acme/c", "acme/a", "acme/b/x", "acme-x/a", "acme2/a", "acmea/b", "other/a", "acm/e"}) repo(n);
  auto list = [&](std::string_view after, size_t limit) {
    std::vector<std::string> out;
    for (const auto& s : acc_->list_repo_settings("acme", after, limit)) out.push_back(s.name);
    return out;
  };
  EXPECT_EQ(list("", 10), (std::vector<std::string>{"acme/a", "acme/b/x", "acme/c"}));
  EXPECT_EQ(list("", 2), (std::vector<std::string>{"acme/a", "acme/b/x"}));
  EXPECT_EQ(list("acme/b/x", 2), std::vector<std::string>{"acme/c"});
  EXPECT_EQ(list("acme/b", 10), (std::vector<std::string>{"acme/b/x", "acme/c"}));  // `after` need not exist
  EXPECT_TRUE(list("acme/c", 10).empty());
  EXPECT_TRUE(acc_->list_repo_settings("nobody", "", 10).empty());
  auto first = acc_->list_repo_settings("acme", "", 1);
  ASSERT_EQ(first.size(), 1u);
  EXPECT_NE(first[0].uid, 0);  // whole rows
}

// ---- permissions ---------------------------------------------------------

TEST_P(AccountSuite, SetPermissionGrantsReplacesAndNoneRemoves) {
  int64_t alice = user("alice");
  int64_t acme = org("acme");
  int64_t devs = team(acme, "devs");
  int64_t ci = robot(acme, "ci");
  repo("acme/app");
  acc_->set_permission("acme/app", SubjectKind::User, alice, Role::Read);
  acc_->set_permission("acme/app", SubjectKind::User, alice, Role::Write);  // replaces
  acc_->set_permission("acme/app", SubjectKind::Team, devs, Role::Admin);
  acc_->set_permission("acme/app", SubjectKind::Robot, ci, Role::Read);
  auto perms = acc_->permissions("acme/app");
  ASSERT_EQ(perms.size(), 3u);
  std::set<std::tuple<SubjectKind, int64_t, std::string, Role>> got;
  for (const auto& p : perms) got.insert({p.kind, p.subject_id, p.subject, p.role});
  EXPECT_EQ(got, (std::set<std::tuple<SubjectKind, int64_t, std::string, Role>>{
                     {SubjectKind::User, alice, "alice", Role::Write},
                     {SubjectKind::Team, devs, "devs", Role::Admin},
                     {SubjectKind::Robot, ci, "acme+ci", Role::Read}}));
  acc_->set_permission("acme/app", SubjectKind::Team, devs, Role::None);
  acc_->set_permission("acme/app", SubjectKind::User, 424242, Role::None);  // removing nothing is fine
  perms = acc_->permissions("acme/app");
  ASSERT_EQ(perms.size(), 2u);
  for (const auto& p : perms) EXPECT_NE(p.kind, SubjectKind::Team);
  EXPECT_TRUE(acc_->permissions("acme/other").empty());
}

TEST_P(AccountSuite, PermissionsOfListsEveryRepositoryOfOneSubject) {
  int64_t acme = org("acme");
  int64_t ci = robot(acme, "ci");
  int64_t alice = user("alice");
  for (auto r : {"acme/b", "acme/a", "zorg/z"}) {
    repo(r);
    acc_->set_permission(r, SubjectKind::Robot, ci, r == std::string("acme/b") ? Role::Write : Role::Read);
  }
  acc_->set_permission("acme/a", SubjectKind::User, alice, Role::Admin);
  auto perms = acc_->permissions_of(SubjectKind::Robot, ci);
  EXPECT_EQ(perm_repos(perms), (std::vector<std::string>{"acme/a", "acme/b", "zorg/z"}));
  for (const auto& p : perms) {
    EXPECT_EQ(p.kind, SubjectKind::Robot);
    EXPECT_EQ(p.subject_id, ci);
    EXPECT_EQ(p.subject, "acme+ci");
    EXPECT_EQ(p.role, p.repo == "acme/b" ? Role::Write : Role::Read) << p.repo;
  }
  EXPECT_EQ(perm_repos(acc_->permissions_of(SubjectKind::User, alice)), std::vector<std::string>{"acme/a"});
}

TEST_P(AccountSuite, ExplicitRoleIsTheHighestGrantDirectOrThroughTeams) {
  int64_t alice = user("alice");
  int64_t acme = org("acme");
  int64_t readers = team(acme, "readers"), writers = team(acme, "writers");
  int64_t ci = robot(acme, "ci");
  repo("acme/app");
  repo("acme/lib");
  EXPECT_EQ(acc_->explicit_role("acme/app", SubjectKind::User, alice), Role::None);
  acc_->set_permission("acme/app", SubjectKind::User, alice, Role::Read);
  EXPECT_EQ(acc_->explicit_role("acme/app", SubjectKind::User, alice), Role::Read);
  acc_->set_permission("acme/app", SubjectKind::Team, writers, Role::Write);
  acc_->set_permission("acme/app", SubjectKind::Team, readers, Role::Read);
  EXPECT_EQ(acc_->explicit_role("acme/app", SubjectKind::User, alice), Role::Read);  // not on the team yet
  acc_->add_team_member(writers, SubjectKind::User, alice);
  acc_->add_team_member(readers, SubjectKind::User, alice);
  EXPECT_EQ(acc_->explicit_role("acme/app", SubjectKind::User, alice), Role::Write);
  acc_->set_permission("acme/app", SubjectKind::User, alice, Role::Admin);
  EXPECT_EQ(acc_->explicit_role("acme/app", SubjectKind::User, alice), Role::Admin);  // direct beats team
  acc_->set_permission("acme/app", SubjectKind::User, alice, Role::None);
  acc_->remove_team_member(writers, SubjectKind::User, alice);
  EXPECT_EQ(acc_->explicit_role("acme/app", SubjectKind::User, alice), Role::Read);
  acc_->add_team_member(writers, SubjectKind::Robot, ci);  // robots get their teams' grants too
  EXPECT_EQ(acc_->explicit_role("acme/app", SubjectKind::Robot, ci), Role::Write);
  EXPECT_EQ(acc_->explicit_role("acme/lib", SubjectKind::Robot, ci), Role::None);  // per repository
}

TEST_P(AccountSuite, RepoAccessListsARangeWithVisibilityAndGrants) {
  int64_t alice = user("alice"), bob = user("bob");
  int64_t acme = org("acme");
  int64_t writers = team(acme, "writers");
  acc_->put_repo_settings({.name = "acme/a", .is_public = true});
  repo("acme/b");
  repo("acme0/x");  // outside the range
  acc_->set_permission("acme/b", SubjectKind::User, alice, Role::Read);
  acc_->set_permission("acme/c", SubjectKind::Team, writers, Role::Write);  // a grant without a settings row
  acc_->set_permission("acme/c", SubjectKind::User, bob, Role::Admin);      // someone else's grant
  acc_->add_team_member(writers, SubjectKind::User, alice);
  auto got = acc_->repo_access("acme/", "acme/z", SubjectKind::User, alice);
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0].name, "acme/a");
  EXPECT_TRUE(got[0].is_public);
  EXPECT_EQ(got[0].role, Role::None);
  EXPECT_EQ(got[1].name, "acme/b");
  EXPECT_FALSE(got[1].is_public);
  EXPECT_EQ(got[1].role, Role::Read);
  EXPECT_EQ(got[2].name, "acme/c");
  EXPECT_EQ(got[2].role, Role::Write);  // through the team, not bob's admin
  for (const auto& a : got) EXPECT_EQ(a.role, acc_->explicit_role(a.name, SubjectKind::User, alice)) << a.name;
  auto one = acc_->repo_access("acme/b", "acme/b", SubjectKind::User, 0);  // nobody: rows without grants
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(one[0].role, Role::None);
}

TEST_P(AccountSuite, DefaultPermissionsAreSetReplacedAndRemovedPerOrganization) {
  int64_t acme = org("acme"), zorg = org("zorg");
  int64_t alice = user("alice");
  int64_t devs = team(acme, "devs");
  int64_t ci = robot(acme, "ci");
  EXPECT_TRUE(acc_->default_permissions(acme).empty());
  acc_->set_default_permission(acme, SubjectKind::User, alice, Role::Read);
  acc_->set_default_permission(acme, SubjectKind::Team, devs, Role::Write);
  acc_->set_default_permission(acme, SubjectKind::Robot, ci, Role::Read);
  acc_->set_default_permission(acme, SubjectKind::Robot, ci, Role::Admin);  // replaces
  std::set<std::tuple<SubjectKind, int64_t, std::string, Role>> got;
  for (const auto& p : acc_->default_permissions(acme)) got.insert({p.kind, p.subject_id, p.subject, p.role});
  EXPECT_EQ(got, (std::set<std::tuple<SubjectKind, int64_t, std::string, Role>>{
                     {SubjectKind::User, alice, "alice", Role::Read},
                     {SubjectKind::Team, devs, "devs", Role::Write},
                     {SubjectKind::Robot, ci, "acme+ci", Role::Admin}}));
  EXPECT_TRUE(acc_->default_permissions(zorg).empty());
  acc_->set_default_permission(acme, SubjectKind::Team, devs, Role::None);
  auto left = acc_->default_permissions(acme);
  EXPECT_EQ(left.size(), 2u);
  for (const auto& p : left) EXPECT_NE(p.kind, SubjectKind::Team);
  // Defaults are not grants on any repository.
  EXPECT_TRUE(acc_->permissions_of(SubjectKind::User, alice).empty());
}

// ---- personal API tokens -------------------------------------------------

TEST_P(AccountSuite, ApiTokenIsFoundByItsHashAndListedForItsUser) {
  int64_t alice = user("alice"), bob = user("bob");
  int64_t t0 = unix_now();
  int64_t id1 = api_token(alice, "hash-1");
  int64_t id2 = api_token(alice, "hash-2");
  int64_t t1 = unix_now();
  api_token(bob, "hash-3");
  EXPECT_NE(id1, id2);
  auto t = acc_->api_token_by_hash("hash-1");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->id, id1);
  EXPECT_EQ(t->user_id, alice);
  EXPECT_EQ(t->name, "tok-hash-1");
  EXPECT_EQ(t->token_hash, "hash-1");
  EXPECT_GE(t->created, t0);
  EXPECT_LE(t->created, t1);
  EXPECT_FALSE(acc_->api_token_by_hash("hash-9"));
  auto mine = acc_->api_tokens(alice);
  std::set<std::pair<int64_t, std::string>> got;
  for (const auto& x : mine) {
    EXPECT_EQ(x.user_id, alice);
    got.insert({x.id, x.name});
  }
  EXPECT_EQ(got, (std::set<std::pair<int64_t, std::string>>{{id1, "tok-hash-1"}, {id2, "tok-hash-2"}}));
  EXPECT_EQ(acc_->api_tokens(bob).size(), 1u);
}

TEST_P(AccountSuite, TouchApiTokenRecordsItsLastUse) {
  int64_t alice = user("alice");
  int64_t id = api_token(alice, "h1");
  int64_t other = api_token(alice, "h2");
  acc_->touch_api_token(id, 1700000000);
  EXPECT_EQ(acc_->api_token_by_hash("h1")->last_used, 1700000000);
  acc_->touch_api_token(id, 1700000100);
  EXPECT_EQ(acc_->api_token_by_hash("h1")->last_used, 1700000100);
  EXPECT_NE(acc_->api_token_by_hash("h2")->last_used, 1700000100);  // only the one touched
  for (const auto& t : acc_->api_tokens(alice)) EXPECT_EQ(t.last_used == 1700000100, t.id == id) << t.id;
  EXPECT_EQ(acc_->api_tokens(alice).size(), 2u);
  EXPECT_NE(other, id);
}

TEST_P(AccountSuite, ApiTokenIsDeletedOnlyByItsOwner) {
  int64_t alice = user("alice"), bob = user("bob");
  int64_t id = api_token(alice, "h1");
  EXPECT_FALSE(acc_->delete_api_token(bob, id));
  EXPECT_TRUE(acc_->api_token_by_hash("h1"));
  EXPECT_TRUE(acc_->delete_api_token(alice, id));
  EXPECT_FALSE(acc_->api_token_by_hash("h1"));
  EXPECT_TRUE(acc_->api_tokens(alice).empty());
  EXPECT_FALSE(acc_->delete_api_token(alice, id));
}

// ---- browser sessions ----------------------------------------------------

TEST_P(AccountSuite, SessionIsFoundByItsHashUntilDeleted) {
  int64_t alice = user("alice");
  acc_->create_session({.id_hash = "sid", .user_id = alice, .csrf = "csrf-token", .generation = 77, .expires = 2000000000});
  session("other", alice);
  auto s = acc_->session("sid");
  ASSERT_TRUE(s);
  EXPECT_EQ(s->id_hash, "sid");
  EXPECT_EQ(s->user_id, alice);
  EXPECT_EQ(s->csrf, "csrf-token");
  EXPECT_EQ(s->generation, 77);
  EXPECT_EQ(s->expires, 2000000000);
  EXPECT_FALSE(acc_->session("nope"));
  acc_->delete_session("sid");
  EXPECT_FALSE(acc_->session("sid"));
  EXPECT_NO_THROW(acc_->delete_session("sid"));
  EXPECT_TRUE(acc_->session("other"));
}

TEST_P(AccountSuite, PurgeSessionsRemovesOnlyExpiredOnesAndCountsThem) {
  int64_t alice = user("alice");
  session("a", alice, 100);
  session("b", alice, 200);
  session("c", alice, 5000);
  EXPECT_EQ(acc_->purge_sessions(1000), 2u);
  EXPECT_FALSE(acc_->session("a"));
  EXPECT_FALSE(acc_->session("b"));
  EXPECT_TRUE(acc_->session("c"));
  EXPECT_EQ(acc_->purge_sessions(1000), 0u);
  EXPECT_EQ(acc_->purge_sessions(9000), 1u);
  EXPECT_FALSE(acc_->session("c"));
}

// ---- failed sign-ins -----------------------------------------------------

TEST_P(AccountSuite, LoginFailuresAreCountedWithinTheWindowAndBlocksLast) {
  EXPECT_EQ(acc_->note_login_failure("k", 100, 0), 1);
  EXPECT_EQ(acc_->note_login_failure("k", 110, 0), 2);
  EXPECT_EQ(acc_->note_login_failure("other", 110, 0), 1) << "keys are counted apart";
  EXPECT_EQ(acc_->note_login_failure("k", 200, 105), 2) << "a failure before the window no longer counts";
  EXPECT_EQ(acc_->login_blocked_until({"k", "other"}, 200), 0);
  acc_->block_login("k", 500);
  EXPECT_EQ(acc_->login_blocked_until({"other", "k"}, 200), 500);
  EXPECT_EQ(acc_->login_blocked_until({"k"}, 500), 0) << "a block ends at its time";
  acc_->block_login("k", 400);
  EXPECT_EQ(acc_->login_blocked_until({"k"}, 200), 500) << "an earlier block does not shorten a later one";
  EXPECT_EQ(acc_->note_login_failure("k", 210, 105), 1) << "a block starts the count afresh";
  acc_->block_login("other", 300);
  EXPECT_EQ(acc_->purge_login_failures(300), 2u) << "k's failure at 210 and the block of other (its failures went with the block)";
  EXPECT_EQ(acc_->login_blocked_until({"k"}, 200), 500);
  EXPECT_EQ(acc_->note_login_failure("k", 310, 0), 1);
}

// ---- audit log -----------------------------------------------------------

TEST_P(AccountSuite, AuditIsNewestFirstAndKeepsEveryField) {
  acc_->append_audit({event("login"), event("push"), event("delete")});
  acc_->append_audit({});  // nothing to append is fine
  meta::AuditEvent e{.time_ms = 1700000000123, .actor = "acme+ci", .actor_kind = "robot", .action = "squash_pull",
                     .ns = "acme", .repo = "acme/app", .detail = R"({"tag":"v1"})", .address = "2001:db8::1"};
  acc_->append_audit({e});
  auto all = acc_->audit({});
  ASSERT_EQ(all.size(), 4u);
  EXPECT_EQ(all[0].action, "squash_pull");
  EXPECT_EQ(all[1].action, "delete");
  EXPECT_EQ(all[2].action, "push");
  EXPECT_EQ(all[3].action, "login");
  for (size_t i = 1; i < all.size(); ++i) EXPECT_GT(all[i - 1].id, all[i].id);
  EXPECT_EQ(all[0].time_ms, 1700000000123);
  EXPECT_EQ(all[0].actor, "acme+ci");
  EXPECT_EQ(all[0].actor_kind, "robot");
  EXPECT_EQ(all[0].ns, "acme");
  EXPECT_EQ(all[0].repo, "acme/app");
  EXPECT_EQ(all[0].detail, R"({"tag":"v1"})");
  EXPECT_EQ(all[0].address, "2001:db8::1");
}

TEST_P(AccountSuite, AuditPagesWithBeforeIdAndLimit) {
  for (int i = 0; i < 5; ++i) acc_->append_audit({event("e" + std::to_string(i))});
  std::vector<std::string> walked;
  int64_t before = 0;
  for (int page = 0; page < 10; ++page) {
    auto p = acc_->audit({.before_id = before, .limit = 2});
    EXPECT_LE(p.size(), 2u);
    if (p.empty()) break;
    for (const auto& e : p) walked.push_back(e.action);
    before = p.back().id;
  }
  EXPECT_EQ(walked, (std::vector<std::string>{"e4", "e3", "e2", "e1", "e0"}));
}

TEST_P(AccountSuite, AuditFiltersByNamespaceAndRepository) {
  org("acme");
  org("zorg");
  repo("acme/app");
  repo("acme/lib");
  repo("zorg/app");
  acc_->append_audit({event("a1", "acme", "acme/app"), event("l1", "acme", "acme/lib"), event("z1", "zorg", "zorg/app"),
                      event("n1", "acme"), event("a2", "acme", "acme/app")});
  EXPECT_EQ(audit_actions({.ns = "acme"}), (std::vector<std::string>{"a2", "n1", "l1", "a1"}));
  EXPECT_EQ(audit_actions({.ns = "zorg"}), std::vector<std::string>{"z1"});
  EXPECT_EQ(audit_actions({.repo = "acme/app"}), (std::vector<std::string>{"a2", "a1"}));
  EXPECT_EQ(audit_actions({.ns = "acme", .repo = "acme/lib"}), std::vector<std::string>{"l1"});
  EXPECT_EQ(audit_actions({.ns = "acme", .limit = 1}), std::vector<std::string>{"a2"});
  EXPECT_TRUE(audit_actions({.ns = "nobody"}).empty());
}

TEST_P(AccountSuite, AuditByNameNeverShowsADeletedPredecessorsEvents) {
  int64_t acme = org("acme");
  repo("acme/app");
  acc_->append_audit({event("old-org", "acme"), event("old-repo", "acme", "acme/app")});
  // The repository is deleted and created again: the new one has no history.
  EXPECT_TRUE(acc_->delete_repo("acme/app"));
  EXPECT_TRUE(acc_->create_repo({.name = "acme/app"}, {}));
  acc_->append_audit({event("new-repo", "acme", "acme/app")});
  EXPECT_EQ(audit_actions({.repo = "acme/app"}), std::vector<std::string>{"new-repo"});
  EXPECT_EQ(audit_actions({.ns = "acme"}), (std::vector<std::string>{"new-repo", "old-repo", "old-org"}));
  // The organization is deleted and its name taken again.
  EXPECT_TRUE(acc_->delete_account(acme));
  org("acme");
  acc_->append_audit({event("new-org", "acme")});
  EXPECT_EQ(audit_actions({.ns = "acme"}), std::vector<std::string>{"new-org"});
  EXPECT_EQ(acc_->audit({}).size(), 4u);  // unfiltered, every event stays
}

// ---- durability, sharing, concurrency ------------------------------------

TEST_P(AccountSuite, EverythingSurvivesReopen) {
  int64_t alice = user("alice");
  int64_t acme = org("acme");
  int64_t devs = team(acme, "devs", TeamRole::Creator);
  acc_->add_team_member(devs, SubjectKind::User, alice);
  int64_t ci = robot(acme, "ci");
  repo("acme/app");
  acc_->set_permission("acme/app", SubjectKind::Robot, ci, Role::Write);
  acc_->set_default_permission(acme, SubjectKind::Team, devs, Role::Read);
  api_token(alice, "h1");
  session("s1", alice);
  acc_->append_audit({event("push", "acme", "acme/app")});
  acc_ = open();  // a restart
  EXPECT_EQ(acc_->account("alice")->id, alice);
  EXPECT_EQ(acc_->team(acme, "devs")->role, TeamRole::Creator);
  EXPECT_EQ(member_names(devs), std::vector<std::string>{"alice"});
  EXPECT_EQ(acc_->robot("acme+ci")->id, ci);
  EXPECT_TRUE(acc_->repo_settings("acme/app"));
  EXPECT_EQ(acc_->explicit_role("acme/app", SubjectKind::Robot, ci), Role::Write);
  EXPECT_EQ(acc_->default_permissions(acme).size(), 1u);
  EXPECT_TRUE(acc_->api_token_by_hash("h1"));
  EXPECT_TRUE(acc_->session("s1"));
  EXPECT_EQ(audit_actions({.repo = "acme/app"}), std::vector<std::string>{"push"});
}

TEST_P(AccountSuite, ChangesAreVisibleToASecondStoreOnTheSameData) {
  auto other = open();  // another process sharing the store
  int64_t alice = other->create_account({.name = "alice", .password_hash = "h"});
  other->create_session({.id_hash = "s", .user_id = alice, .expires = 4102444800});
  EXPECT_EQ(acc_->account("alice")->id, alice);
  EXPECT_TRUE(acc_->session("s"));
  EXPECT_THROW(acc_->create_account({.name = "alice"}), meta::Conflict);  // the name is taken for both
  acc_->set_password(alice, "h2");
  EXPECT_EQ(other->account_by_id(alice)->password_hash, "h2");
  EXPECT_FALSE(other->session("s"));
}

TEST_P(AccountSuite, ConcurrentWritersOfDistinctRowsAllLand) {
  auto other = open();  // half the writers go through a second store, like a second process
  constexpr int kThreads = 4, kEach = 10;
  std::vector<std::thread> ts;
  for (int t = 0; t < kThreads; ++t)
    ts.emplace_back([&, t] {
      meta::AccountStore& s = t % 2 ? *other : *acc_;
      for (int i = 0; i < kEach; ++i) {
        std::string name = "u" + std::to_string(t) + "-" + std::to_string(i);
        int64_t id = s.create_account({.name = name, .password_hash = "h"});
        s.create_session({.id_hash = "s-" + name, .user_id = id, .expires = 4102444800});
        s.create_api_token({.user_id = id, .name = "t", .token_hash = "h-" + name});
        s.append_audit({event("created", name)});
      }
    });
  for (auto& t : ts) t.join();
  EXPECT_EQ(acc_->user_count(), static_cast<size_t>(kThreads * kEach));
  std::set<int64_t> ids;
  for (int t = 0; t < kThreads; ++t)
    for (int i = 0; i < kEach; ++i) {
      std::string name = "u" + std::to_string(t) + "-" + std::to_string(i);
      auto a = acc_->account(name);
      ASSERT_TRUE(a) << name;
      ids.insert(a->id);
      EXPECT_EQ(acc_->session("s-" + name)->user_id, a->id) << name;
      EXPECT_EQ(acc_->api_token_by_hash("h-" + name)->user_id, a->id) << name;
    }
  EXPECT_EQ(ids.size(), static_cast<size_t>(kThreads * kEach));  // every id distinct
  EXPECT_EQ(acc_->audit({.limit = 1000}).size(), static_cast<size_t>(kThreads * kEach));
}

INSTANTIATE_TEST_SUITE_P(Backends, AccountSuite, ::testing::ValuesIn(tb::account_backend_names()),
                         [](const auto& info) { return tb::test_name(info.param); });

// ---- the names of roles and kinds (account_store.h's free functions) ------

TEST(AccountRoles, NamesRoundTripAndRolesAreOrdered) {
  for (Role r : {Role::None, Role::Read, Role::Write, Role::Admin}) EXPECT_EQ(meta::parse_role(meta::role_name(r)), r);
  EXPECT_EQ(meta::role_name(Role::Write), "write");
  EXPECT_FALSE(meta::parse_role("owner"));
  EXPECT_FALSE(meta::parse_role("Read"));
  EXPECT_LT(Role::Read, Role::Write);  // a higher role includes the lower ones
  EXPECT_LT(Role::Write, Role::Admin);
  for (TeamRole r : {TeamRole::Member, TeamRole::Creator, TeamRole::Admin})
    EXPECT_EQ(meta::parse_team_role(meta::team_role_name(r)), r);
  EXPECT_EQ(meta::team_role_name(TeamRole::Creator), "creator");
  EXPECT_FALSE(meta::parse_team_role("none"));
  EXPECT_LT(TeamRole::Member, TeamRole::Creator);
  EXPECT_LT(TeamRole::Creator, TeamRole::Admin);
  EXPECT_EQ(meta::subject_kind_name(SubjectKind::User), "user");
  EXPECT_EQ(meta::subject_kind_name(SubjectKind::Team), "team");
  EXPECT_EQ(meta::subject_kind_name(SubjectKind::Robot), "robot");
}

}  // namespace
