// auth/policy.h — the access rules (Quay's model, stated in auth.h): a
// caller's role on a repository, whether they may create repositories in a
// namespace, whether they administer it. Decides only: reads the account
// store, writes nothing, holds no state (thread-safe as the store is).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "auth/principal.h"
#include "meta/account_store.h"

namespace wharf::auth {

class AccessPolicy {
 public:
  explicit AccessPolicy(meta::AccountStore& accounts) : accounts_(accounts) {}

  meta::Role role(const Principal& p, std::string_view repo) const;
  // role() of each of `names` (sorted), with at most three queries per
  // namespace among them rather than four per repository: for lists.
  std::vector<meta::Role> roles(const Principal& p, const std::vector<std::string>& names) const;
  bool can_create(const Principal& p, std::string_view ns) const;
  // Namespace admin: the user themself, an org admin, or a superuser.
  bool namespace_admin(const Principal& p, std::string_view ns) const;

 private:
  meta::AccountStore& accounts_;
};

}  // namespace wharf::auth
