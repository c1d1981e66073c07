// wharf's command line: parses the subcommands and their arguments, loads
// the configuration and hands over to cli/commands.h.
#include <malloc.h>

#include <CLI/CLI.hpp>
#include <iostream>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include "cli/commands.h"
#include "cli/log.h"
#include "cli/stores.h"
#include "core/config.h"

using namespace wharf;

int main(int argc, char** argv) {
  // Allocations of 1 MiB and more (a squash's inflate chunks, copy buffers)
  // get pages of their own that go back to the system when freed. glibc's
  // default threshold rises to the largest block freed so far, after which
  // such blocks come from per-thread arenas that keep them: peak RSS climbed
  // 48 -> 66 -> 72 MB over three squashes of a 1 GB image, against 45-49 MB
  // with a fixed threshold, at the same speed (BENCHMARKS.md, 2026-11-27).
  // Reused big buffers are pooled where they are used (storage::Buffer).
  ::mallopt(M_MMAP_THRESHOLD, 1 << 20);
  auto logger = spdlog::stderr_logger_mt("wharf");
  spdlog::set_default_logger(logger);
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");

  CLI::App app{"wharf — a container image registry with squashed image downloads"};
  app.require_subcommand(1);
  std::string config_path, listen, data_dir, log_format;
  auto* serve_cmd = app.add_subcommand("serve", "run the registry");
  serve_cmd->add_option("--config", config_path, "YAML configuration file");
  serve_cmd->add_option("--listen", listen, "ADDR:PORT to listen on (default 127.0.0.1:5000)");
  serve_cmd->add_option("--data-dir", data_dir, "directory for blobs and the SQLite database");
  serve_cmd->add_option("--log-format", log_format, "text or json")->check(CLI::IsMember({"text", "json"}));
  bool no_auth = false;
  serve_cmd->add_flag("--no-auth", no_auth, "open registry without accounts (auth.enabled: false)");

  // Account administration; works while the server runs (same store).
  auto common = [&](CLI::App* c) {
    c->add_option("--config", config_path, "YAML configuration file");
    c->add_option("--data-dir", data_dir, "data directory of the registry");
  };
  std::string a_name, a_email, a_owner, a_role, a_robot, a_user, a_team;
  bool a_superuser = false, a_pw_stdin = false;
  auto* user_cmd = app.add_subcommand("user", "manage users");
  auto* user_create = user_cmd->add_subcommand("create", "create a user");
  user_create->add_option("name", a_name)->required();
  user_create->add_option("--email", a_email);
  user_create->add_flag("--password-stdin", a_pw_stdin, "read the password from standard input")->required();
  user_create->add_flag("--superuser", a_superuser);
  common(user_create);
  auto* user_passwd = user_cmd->add_subcommand("passwd", "set a user's password (invalidates their tokens)");
  user_passwd->add_option("name", a_name)->required();
  user_passwd->add_flag("--password-stdin", a_pw_stdin)->required();
  common(user_passwd);
  auto* user_disable = user_cmd->add_subcommand("disable", "disable a user (ends their sessions and tokens at once)");
  user_disable->add_option("name", a_name)->required();
  common(user_disable);
  auto* user_enable = user_cmd->add_subcommand("enable", "enable a disabled user again");
  user_enable->add_option("name", a_name)->required();
  common(user_enable);
  auto* user_delete = user_cmd->add_subcommand("delete", "delete a user (refused while their namespace has repositories)");
  user_delete->add_option("name", a_name)->required();
  common(user_delete);
  auto* org_cmd = app.add_subcommand("org", "manage organizations");
  auto* org_create = org_cmd->add_subcommand("create", "create an organization");
  org_create->add_option("name", a_name)->required();
  org_create->add_option("--owner", a_owner, "user who becomes its first admin")->required();
  org_create->add_option("--email", a_email);
  common(org_create);
  auto* robot_cmd = app.add_subcommand("robot", "manage robot accounts");
  auto* robot_create = robot_cmd->add_subcommand("create", "create NS+NAME and print its token");
  robot_create->add_option("name", a_name)->required();
  common(robot_create);
  auto* robot_tok = robot_cmd->add_subcommand("token", "print the token of NS+NAME");
  robot_tok->add_option("name", a_name)->required();
  bool a_regen = false;
  robot_tok->add_flag("--regenerate", a_regen, "replace the token (the old one stops working at once)");
  common(robot_tok);
  auto* perm_cmd = app.add_subcommand("perm", "manage repository permissions");
  auto* perm_grant = perm_cmd->add_subcommand("grant", "grant a role on NS/REPO");
  perm_grant->add_option("repo", a_name)->required();
  auto* g = perm_grant->add_option_group("subject");
  g->add_option("--robot", a_robot);
  g->add_option("--user", a_user);
  g->add_option("--team", a_team);
  g->require_option(1);
  perm_grant->add_option("--role", a_role)->required()->check(CLI::IsMember({"read", "write", "admin", "none"}));
  common(perm_grant);
  bool gc_dry = false;
  int gc_grace = 60;
  auto* gc_cmd = app.add_subcommand("gc", "remove blobs nothing references (safe while the server runs)");
  gc_cmd->add_flag("--dry-run", gc_dry, "list what would be removed");
  gc_cmd->add_option("--grace-minutes", gc_grace, "only blobs committed longer ago than this (default 60)")
      ->check(CLI::NonNegativeNumber);
  common(gc_cmd);
  user_cmd->require_subcommand(1);
  org_cmd->require_subcommand(1);
  robot_cmd->require_subcommand(1);
  perm_cmd->require_subcommand(1);

  auto* squash_cmd = app.add_subcommand("squash", "flatten an image on disk (--from/--to), or prime the cache (prime)");
  std::string from, to = "-", platform, tag, prime_ref;
  squash_cmd->add_option("--from", from, "oci:DIR[:TAG] or docker-archive:FILE");
  squash_cmd->add_option("--to", to, "output file, or - for stdout (default)");
  squash_cmd->add_option("--platform", platform, "os/arch[/variant] for multi-platform images");
  squash_cmd->add_option("--tag", tag, "RepoTags entry for the archive (name:tag)");
  squash_cmd->add_option("--config", config_path, "YAML configuration file (limits)");
  auto* prime_cmd = squash_cmd->add_subcommand("prime", "build the squash cache entry of NAME:TAG ahead of use");
  prime_cmd->add_option("image", prime_ref, "NAME:TAG or NAME@DIGEST")->required();
  prime_cmd->add_option("--config", config_path, "YAML configuration file");
  prime_cmd->add_option("--data-dir", data_dir, "data directory of the registry");
  prime_cmd->add_option("--platform", platform, "os/arch[/variant]");
  std::string migrate_from, migrate_to;
  auto* migrate_cmd = app.add_subcommand("migrate", "copy this registry's blobs, metadata and accounts to other stores");
  migrate_cmd->add_option("--from", migrate_from, "YAML configuration of the registry to copy")->required();
  migrate_cmd->add_option("--to", migrate_to, "YAML configuration of the stores to copy it to")->required();
  CLI11_PARSE(app, argc, argv);

  try {
    core::Config cfg = config_path.empty() ? core::Config{} : core::load_config(config_path);
    if (!listen.empty()) cfg.listen = listen;
    if (!data_dir.empty()) cfg.data_dir = data_dir;
    if (!log_format.empty()) cfg.log.format = log_format;
    if (cfg.log.format == "json") {
      spdlog::set_pattern("%v");
      cli::set_json_logs(true);
    }
    if (no_auth) cfg.auth.enabled = false;
    cli::check_drivers(cfg);
    if (*serve_cmd) return cli::serve(cfg);
    if (*migrate_cmd) return cli::migrate(core::load_config(migrate_from), core::load_config(migrate_to));
    if (*gc_cmd) return cli::gc(cfg, gc_dry, gc_grace);
    cli::AdminArgs args{a_name, a_email, a_owner, a_role, a_robot, a_user, a_team, a_superuser, a_regen};
    for (auto [sub, cmd] : {std::pair{user_create, cli::AdminCommand::UserCreate},
                            {user_passwd, cli::AdminCommand::UserPasswd},
                            {user_disable, cli::AdminCommand::UserDisable},
                            {user_enable, cli::AdminCommand::UserEnable},
                            {user_delete, cli::AdminCommand::UserDelete},
                            {org_create, cli::AdminCommand::OrgCreate},
                            {robot_create, cli::AdminCommand::RobotCreate},
                            {robot_tok, cli::AdminCommand::RobotToken},
                            {perm_grant, cli::AdminCommand::PermGrant}})
      if (*sub) return cli::admin(cfg, cmd, args);
    if (*prime_cmd) return cli::squash_prime(cfg, prime_ref, platform);
    if (*squash_cmd) {
      if (from.empty()) throw std::runtime_error("wharf squash needs --from (or the prime subcommand)");
      return cli::squash_offline_cmd(cfg, from, to, platform, tag);
    }
  } catch (const std::exception& e) {
    cli::say(spdlog::level::err, e.what());
    return 1;
  }
  return 0;
}
