// auth/manage.h — account operations shared by the admin CLI (`wharf user|
// org|robot|perm ...`) and the management API, so both validate names and
// apply the same rules. Each throws core::Error (BadRequest, NameUnknown,
// Conflict) with a message a person can act on.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "auth/crypto.h"
#include "meta/account_store.h"

namespace wharf::auth {

// Namespace (user, organization) and robot short names: [a-z0-9][a-z0-9_-]{1,63}.
bool valid_account_name(std::string_view name);

int64_t create_user(meta::AccountStore& s, std::string_view name, std::string_view email, std::string_view password,
                    bool superuser);
// Creates the organization with an "owners" team (role admin) holding `owner`.
int64_t create_org(meta::AccountStore& s, std::string_view name, std::string_view owner, std::string_view email = {});
// Creates robot "ns+short" and returns its token (shown to the caller once
// here; namespace admins can read it again).
std::string create_robot(meta::AccountStore& s, const ServerKey& key, std::string_view full_name,
                         std::string_view description = {});
// The robot's current token; regenerate replaces it (old one invalid at once).
std::string robot_token(meta::AccountStore& s, const ServerKey& key, std::string_view full_name);
std::string regenerate_robot_token(meta::AccountStore& s, const ServerKey& key, std::string_view full_name);

// Disables (or enables again) user `name`: a disabled user cannot sign in,
// and their sessions, personal API tokens, registry and refresh tokens end at
// once (robots of their namespace keep working: they belong to the namespace,
// which an administrator may still need to pull from). Returns the user's id.
int64_t set_user_disabled(meta::AccountStore& s, std::string_view name, bool disabled);
// Deletes user `name` with their sessions, tokens, robots, team memberships
// and permissions. Refused (Conflict) while `has_repositories(name)` says
// their namespace still holds repositories: delete or move those first, or
// disable the user instead. Organizations the user administered stay (a
// superuser can still administer them). Returns the user's id.
int64_t delete_user(meta::AccountStore& s, std::string_view name,
                    const std::function<bool(std::string_view ns)>& has_repositories);

// Resolves a permission subject in the namespace of `repo`: a user name, a
// robot full name ("ns+name"; must belong to that namespace), or a team of
// the namespace's organization. Returns its id.
int64_t subject_id(meta::AccountStore& s, std::string_view repo_or_ns, meta::SubjectKind kind, std::string_view name);

// Grants (or with Role::None revokes) `role` on `repo`.
void grant(meta::AccountStore& s, std::string_view repo, meta::SubjectKind kind, std::string_view subject,
           meta::Role role);

}  // namespace wharf::auth
