// auth/principal.h — who a caller is once a credential was checked, and by
// which kind of credential. Plain values.
#pragma once

#include <cstdint>
#include <string>

#include "meta/account_store.h"

namespace wharf::auth {

enum class Credential { None, Password, RobotToken, RegistryToken, RefreshToken, ApiToken, Session };

struct Principal {
  enum class Kind { Anonymous, User, Robot } kind = Kind::Anonymous;
  int64_t id = 0;
  std::string name;  // user name or robot full name
  bool superuser = false;
  int64_t generation = 0;
  Credential via = Credential::None;
  bool anonymous() const { return kind == Kind::Anonymous; }
  meta::SubjectKind subject() const {
    return kind == Kind::Robot ? meta::SubjectKind::Robot : meta::SubjectKind::User;
  }
  std::string kind_name() const {
    return kind == Kind::User ? "user" : kind == Kind::Robot ? "robot" : "anonymous";
  }
};

}  // namespace wharf::auth
