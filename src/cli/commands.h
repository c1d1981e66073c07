// cli/commands.h — what each `wharf` subcommand does, once main.cc has
// parsed its arguments and loaded the configuration. Each returns the exit
// status and throws std::runtime_error with a message for the user.
#pragma once

#include <string>

#include "core/config.h"

namespace wharf::cli {

// `wharf serve` (serve.cc).
int serve(core::Config cfg);

// `wharf gc [--dry-run] [--grace-minutes N]` (maintenance.cc).
int gc(const core::Config& cfg, bool dry_run, int grace_minutes);
// `wharf squash prime NAME:TAG|NAME@DIGEST` (maintenance.cc).
int squash_prime(const core::Config& cfg, const std::string& ref, const std::string& platform);
// `wharf squash --from SRC --to FILE|-` (maintenance.cc).
int squash_offline_cmd(const core::Config& cfg, const std::string& from, const std::string& to,
                       const std::string& platform, const std::string& tag);

// `wharf migrate --from OLD.yaml --to NEW.yaml` (migrate.cc): copies the
// registry `from` describes into the stores `to` describes.
int migrate(const core::Config& from, const core::Config& to);

// The account administration commands (admin.cc); they work while the
// server runs (same store).
enum class AdminCommand { UserCreate, UserPasswd, UserDisable, UserEnable, UserDelete, OrgCreate, RobotCreate,
                          RobotToken, PermGrant };
struct AdminArgs {
  std::string name, email, owner, role, robot, user, team;
  bool superuser = false, regenerate = false;
};
int admin(const core::Config& cfg, AdminCommand cmd, const AdminArgs& a);

}  // namespace wharf::cli
