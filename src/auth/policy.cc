#include "auth/policy.h"

#include <algorithm>
#include <string>

namespace wharf::auth {

using meta::Role;

namespace {
std::string ns_of(std::string_view repo) { return std::string(repo.substr(0, repo.find('/'))); }
}  // namespace

Role AccessPolicy::role(const Principal& p, std::string_view repo) const {
  if (p.superuser) return Role::Admin;
  Role r = Role::None;
  auto settings = accounts_.repo_settings(repo);
  if (settings && settings->is_public) r = Role::Read;
  if (p.anonymous()) return r;
  std::string ns = ns_of(repo);
  if (p.kind == Principal::Kind::User && p.name == ns) return Role::Admin;
  if (auto owner = accounts_.account(ns); owner && owner->is_org) {
    auto tr = accounts_.team_role(owner->id, p.subject(), p.id);
    if (tr == meta::TeamRole::Admin) return Role::Admin;
  }
  return std::max(r, accounts_.explicit_role(repo, p.subject(), p.id));
}

bool AccessPolicy::can_create(const Principal& p, std::string_view ns) const {
  if (p.anonymous()) return false;
  if (p.superuser) return true;
  if (p.kind == Principal::Kind::User && p.name == ns) return true;
  auto owner = accounts_.account(ns);
  if (!owner || !owner->is_org) return false;
  auto tr = accounts_.team_role(owner->id, p.subject(), p.id);
  return tr && *tr >= meta::TeamRole::Creator;
}

bool AccessPolicy::namespace_admin(const Principal& p, std::string_view ns) const {
  if (p.anonymous() || p.kind == Principal::Kind::Robot) return false;
  if (p.superuser || p.name == ns) return true;
  auto owner = accounts_.account(ns);
  if (!owner || !owner->is_org) return false;
  return accounts_.team_role(owner->id, meta::SubjectKind::User, p.id) == meta::TeamRole::Admin;
}

}  // namespace wharf::auth
