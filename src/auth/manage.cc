#include "auth/manage.h"

#include "core/error.h"
#include "core/reference.h"

namespace wharf::auth {

using core::Error;
using core::ErrorCode;

namespace {
std::string ns_of(std::string_view repo) { return std::string(repo.substr(0, repo.find('/'))); }
std::string new_robot_token() { return random_token(64); }
}  // namespace

bool valid_account_name(std::string_view n) {
  if (n.size() < 2 || n.size() > 64) return false;
  for (size_t i = 0; i < n.size(); ++i) {
    char c = n[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (i > 0 && (c == '_' || c == '-'));
    if (!ok) return false;
  }
  return true;
}

namespace {
meta::Account existing_user(meta::AccountStore& s, std::string_view name) {
  auto a = s.account(name);
  if (!a || a->is_org) throw Error(ErrorCode::NameUnknown, "no such user", std::string(name));
  return *a;
}
}  // namespace

int64_t set_user_disabled(meta::AccountStore& s, std::string_view name, bool disabled) {
  auto a = existing_user(s, name);
  s.set_disabled(a.id, disabled);
  return a.id;
}

int64_t delete_user(meta::AccountStore& s, std::string_view name,
                    const std::function<bool(std::string_view ns)>& has_repositories) {
  auto a = existing_user(s, name);
  if (has_repositories(a.name) || !s.list_repo_settings(a.name, "", 1).empty())
    throw Error(ErrorCode::Conflict,
                "the namespace " + a.name + " still has repositories: delete them first, or disable the user instead",
                a.name);
  s.delete_account(a.id);
  return a.id;
}

int64_t create_user(meta::AccountStore& s, std::string_view name, std::string_view email, std::string_view password,
                    bool superuser) {
  if (!valid_account_name(name))
    throw Error(ErrorCode::BadRequest, "a user name is 2-64 characters: lower-case letters, digits, _ and -",
                std::string(name));
  if (password.size() < 8) throw Error(ErrorCode::BadRequest, "the password must have at least 8 characters");
  meta::Account a;
  a.name = std::string(name);
  a.email = std::string(email);
  a.password_hash = hash_password(password);
  a.superuser = superuser;
  try {
    return s.create_account(a);
  } catch (const meta::Conflict& e) {
    throw Error(ErrorCode::Conflict, e.what());
  }
}

int64_t create_org(meta::AccountStore& s, std::string_view name, std::string_view owner, std::string_view email) {
  if (!valid_account_name(name))
    throw Error(ErrorCode::BadRequest, "an organization name is 2-64 characters: lower-case letters, digits, _ and -",
                std::string(name));
  auto o = s.account(owner);
  if (!o || o->is_org) throw Error(ErrorCode::NameUnknown, "no such user", std::string(owner));
  meta::Account a;
  a.name = std::string(name);
  a.is_org = true;
  a.email = std::string(email);
  int64_t id;
  try {
    id = s.create_account(a);
  } catch (const meta::Conflict& e) {
    throw Error(ErrorCode::Conflict, e.what());
  }
  int64_t team = s.create_team({0, id, "owners", meta::TeamRole::Admin, "administrators of the organization"});
  s.add_team_member(team, meta::SubjectKind::User, o->id);
  return id;
}

std::string create_robot(meta::AccountStore& s, const ServerKey& key, std::string_view full_name,
                         std::string_view description) {
  auto plus = full_name.find('+');
  if (plus == std::string_view::npos)
    throw Error(ErrorCode::BadRequest, "a robot is named NAMESPACE+NAME", std::string(full_name));
  auto ns = full_name.substr(0, plus), short_name = full_name.substr(plus + 1);
  if (!valid_account_name(short_name))
    throw Error(ErrorCode::BadRequest, "a robot name is 2-64 characters: lower-case letters, digits, _ and -",
                std::string(short_name));
  auto owner = s.account(ns);
  if (!owner) throw Error(ErrorCode::NameUnknown, "no such namespace", std::string(ns));
  std::string token = new_robot_token();
  meta::Robot r;
  r.owner_id = owner->id;
  r.ns = owner->name;
  r.short_name = std::string(short_name);
  r.token_sealed = key.seal(token);
  r.description = std::string(description);
  try {
    s.create_robot(r);
  } catch (const meta::Conflict& e) {
    throw Error(ErrorCode::Conflict, e.what());
  }
  return token;
}

std::string robot_token(meta::AccountStore& s, const ServerKey& key, std::string_view full_name) {
  auto r = s.robot(full_name);
  if (!r) throw Error(ErrorCode::NameUnknown, "no such robot account", std::string(full_name));
  auto t = key.open(r->token_sealed);
  if (!t)
    throw Error(ErrorCode::Internal,
                "the robot's token cannot be decrypted with this server key; regenerate the token");
  return *t;
}

std::string regenerate_robot_token(meta::AccountStore& s, const ServerKey& key, std::string_view full_name) {
  auto r = s.robot(full_name);
  if (!r) throw Error(ErrorCode::NameUnknown, "no such robot account", std::string(full_name));
  std::string token = new_robot_token();
  s.set_robot_token(r->id, key.seal(token));
  return token;
}

int64_t subject_id(meta::AccountStore& s, std::string_view repo_or_ns, meta::SubjectKind kind, std::string_view name) {
  std::string ns = ns_of(repo_or_ns);
  switch (kind) {
    case meta::SubjectKind::User: {
      auto a = s.account(name);
      if (!a || a->is_org) throw Error(ErrorCode::NameUnknown, "no such user", std::string(name));
      return a->id;
    }
    case meta::SubjectKind::Robot: {
      auto r = s.robot(name);
      if (!r) throw Error(ErrorCode::NameUnknown, "no such robot account", std::string(name));
      if (r->ns != ns)
        throw Error(ErrorCode::BadRequest, "robot " + r->full_name() + " belongs to another namespace than " + ns);
      return r->id;
    }
    case meta::SubjectKind::Team: {
      auto org = s.account(ns);
      if (!org || !org->is_org) throw Error(ErrorCode::BadRequest, "teams exist only in organizations", ns);
      auto t = s.team(org->id, name);
      if (!t) throw Error(ErrorCode::NameUnknown, "no such team in " + ns, std::string(name));
      return t->id;
    }
  }
  return 0;
}

void grant(meta::AccountStore& s, std::string_view repo, meta::SubjectKind kind, std::string_view subject,
           meta::Role role) {
  if (!core::valid_repository_name(repo) || repo.find('/') == std::string_view::npos)
    throw Error(ErrorCode::NameInvalid, "give the repository as NAMESPACE/NAME", std::string(repo));
  int64_t id = subject_id(s, repo, kind, subject);
  s.set_permission(repo, kind, id, role);
}

}  // namespace wharf::auth
