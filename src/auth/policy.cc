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

std::vector<Role> AccessPolicy::roles(const Principal& p, const std::vector<std::string>& names) const {
  std::vector<Role> out(names.size(), p.superuser ? Role::Admin : Role::None);
  if (p.superuser) return out;
  // Names are sorted, so each namespace's names are one run of them.
  for (size_t i = 0; i < names.size();) {
    std::string ns = ns_of(names[i]);
    size_t j = i + 1;
    while (j < names.size() && ns_of(names[j]) == ns) ++j;
    bool admin = false;  // the same order of rules as role()
    if (!p.anonymous()) {
      if (p.kind == Principal::Kind::User && p.name == ns) {
        admin = true;
      } else if (auto owner = accounts_.account(ns); owner && owner->is_org) {
        admin = accounts_.team_role(owner->id, p.subject(), p.id) == meta::TeamRole::Admin;
      }
    }
    if (admin) {
      std::fill(out.begin() + i, out.begin() + j, Role::Admin);
    } else {
      // Nobody (anonymous) is subject 0, which no account has: visibility alone.
      auto rows = accounts_.repo_access(names[i], names[j - 1], p.subject(), p.anonymous() ? 0 : p.id);
      size_t k = i;
      for (const auto& a : rows) {  // both sorted: one merge
        while (k < j && names[k] < a.name) ++k;
        if (k == j) break;
        if (names[k] != a.name) continue;
        out[k] = std::max(a.is_public ? Role::Read : Role::None, p.anonymous() ? Role::None : a.role);
      }
    }
    i = j;
  }
  return out;
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
