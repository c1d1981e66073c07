// The names of account_store.h's enums (shared by every backend).
#include "meta/account_store.h"

namespace wharf::meta {

std::string_view role_name(Role r) {
  switch (r) {
    case Role::Read:
      return "read";
    case Role::Write:
      return "write";
    case Role::Admin:
      return "admin";
    default:
      return "none";
  }
}
std::optional<Role> parse_role(std::string_view s) {
  if (s == "read") return Role::Read;
  if (s == "write") return Role::Write;
  if (s == "admin") return Role::Admin;
  if (s == "none") return Role::None;
  return std::nullopt;
}
std::string_view team_role_name(TeamRole r) {
  switch (r) {
    case TeamRole::Creator:
      return "creator";
    case TeamRole::Admin:
      return "admin";
    default:
      return "member";
  }
}
std::optional<TeamRole> parse_team_role(std::string_view s) {
  if (s == "member") return TeamRole::Member;
  if (s == "creator") return TeamRole::Creator;
  if (s == "admin") return TeamRole::Admin;
  return std::nullopt;
}
std::string_view subject_kind_name(SubjectKind k) {
  switch (k) {
    case SubjectKind::Team:
      return "team";
    case SubjectKind::Robot:
      return "robot";
    default:
      return "user";
  }
}

}  // namespace wharf::meta
