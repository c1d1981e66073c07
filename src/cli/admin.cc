// The account administration commands: user, org, robot, perm.
#include <iostream>
#include <string>

#include "auth/crypto.h"
#include "auth/manage.h"
#include "cli/accounts.h"
#include "cli/commands.h"
#include "cli/stores.h"
#include "core/error.h"

namespace wharf::cli {

namespace {

std::string read_password() {
  std::string pw;
  std::getline(std::cin, pw);
  if (!pw.empty() && pw.back() == '\r') pw.pop_back();
  return pw;
}

}  // namespace

int admin(const core::Config& cfg, AdminCommand cmd, const AdminArgs& a) {
  try {
    switch (cmd) {
      case AdminCommand::UserCreate: {
        auto env = open_accounts(cfg, Keys::None);
        auth::create_user(*env.store, a.name, a.email, read_password(), a.superuser);
        cli_audit(*env.store, "user_create", "", a.name, {{"superuser", a.superuser}});
        std::cout << "created user " << a.name << (a.superuser ? " (superuser)" : "") << std::endl;
        return 0;
      }
      case AdminCommand::UserPasswd: {
        auto env = open_accounts(cfg, Keys::None);
        auto acct = env.store->account(a.name);
        if (!acct || acct->is_org) throw std::runtime_error("no such user " + a.name);
        std::string pw = read_password();
        if (pw.size() < 8) throw std::runtime_error("the password must have at least 8 characters");
        env.store->set_password(acct->id, auth::hash_password(pw));
        cli_audit(*env.store, "password_change", "", a.name, nlohmann::json::object());
        std::cout << "password of " << a.name << " changed; its tokens and sessions are invalid now" << std::endl;
        return 0;
      }
      case AdminCommand::UserDisable:
      case AdminCommand::UserEnable: {
        auto env = open_accounts(cfg, Keys::None);
        bool disable = cmd == AdminCommand::UserDisable;
        auth::set_user_disabled(*env.store, a.name, disable);
        cli_audit(*env.store, disable ? "user_disable" : "user_enable", "", a.name, {{"user", a.name}});
        std::cout << "user " << a.name << (disable ? " disabled; their sessions and tokens no longer work" : " enabled")
                  << std::endl;
        return 0;
      }
      case AdminCommand::UserDelete: {
        auto env = open_accounts(cfg, Keys::None);
        auto meta_store = open_metadata_store(cfg, false);
        auth::delete_user(*env.store, a.name, [&](std::string_view ns) {
          auto first = meta_store->list_repositories(std::string(ns) + "/", 1);
          return !first.empty() && first[0].starts_with(std::string(ns) + "/");
        });
        cli_audit(*env.store, "user_delete", "", "", {{"user", a.name}});
        std::cout << "user " << a.name << " deleted" << std::endl;
        return 0;
      }
      case AdminCommand::OrgCreate: {
        auto env = open_accounts(cfg, Keys::None);
        auth::create_org(*env.store, a.name, a.owner, a.email);
        cli_audit(*env.store, "org_create", "", a.name, {{"owner", a.owner}});
        std::cout << "created organization " << a.name << " (admin: " << a.owner << ")" << std::endl;
        return 0;
      }
      case AdminCommand::RobotCreate: {
        auto env = open_accounts(cfg, Keys::Require);
        std::cout << auth::create_robot(*env.store, *env.key, a.name) << std::endl;
        cli_audit(*env.store, "robot_create", "", a.name.substr(0, a.name.find('+')), {{"robot", a.name}});
        return 0;
      }
      case AdminCommand::RobotToken: {
        auto env = open_accounts(cfg, Keys::Require);
        std::cout << (a.regenerate ? auth::regenerate_robot_token(*env.store, *env.key, a.name)
                              : auth::robot_token(*env.store, *env.key, a.name))
                  << std::endl;
        cli_audit(*env.store, a.regenerate ? "robot_regenerate" : "robot_token_view", "", a.name.substr(0, a.name.find('+')),
                  {{"robot", a.name}});
        return 0;
      }
      case AdminCommand::PermGrant: {
        auto env = open_accounts(cfg, Keys::None);
        auto kind = !a.robot.empty() ? meta::SubjectKind::Robot
                    : !a.user.empty() ? meta::SubjectKind::User
                                      : meta::SubjectKind::Team;
        std::string who = !a.robot.empty() ? a.robot : !a.user.empty() ? a.user : a.team;
        auth::grant(*env.store, a.name, kind, who, *meta::parse_role(a.role));
        cli_audit(*env.store, "permission", a.name, "",
                  {{"kind", meta::subject_kind_name(kind)}, {"name", who}, {"role", a.role}});
        std::cout << "granted " << a.role << " on " << a.name << " to " << meta::subject_kind_name(kind) << " " << who
                  << std::endl;
        return 0;
      }
    }
  } catch (const core::Error& e) {
    std::string msg = e.what();
    if (!e.detail().empty()) msg += ": " + e.detail();
    throw std::runtime_error(msg);
  }
  return 0;
}

}  // namespace wharf::cli
