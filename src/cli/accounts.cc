#include "cli/accounts.h"

#include <array>
#include <cstdlib>
#include <filesystem>
#include <iostream>

#include "auth/manage.h"
#include "cli/log.h"
#include "cli/stores.h"
#include "core/clock.h"

namespace wharf::cli {

std::string key_dir(const core::Config& cfg) {
  if (!cfg.auth.key_dir.empty()) return cfg.auth.key_dir;
  if (const char* d = std::getenv("WHARF_KEY_DIR"); d && *d) return d;
  const char* home = std::getenv("HOME");
  return std::string(home && *home ? home : "/root") + "/.config/wharf";
}

AccountsEnv open_accounts(const core::Config& cfg, Keys keys) {
  bool create_keys = keys == Keys::Create;
  auth::crypto_init();
  std::filesystem::create_directories(cfg.data_dir);
  AccountsEnv env;
  std::string dir = key_dir(cfg);
  std::string secret_file = cfg.auth.secret_key_file.empty() ? dir + "/secret.key" : cfg.auth.secret_key_file;
  std::string token_file = cfg.auth.token_key_file.empty() ? dir + "/token-key.pem" : cfg.auth.token_key_file;
  auto data = std::filesystem::weakly_canonical(cfg.data_dir).string() + "/";
  for (const auto& f : {secret_file, token_file})
    if (std::filesystem::weakly_canonical(f).string().starts_with(data))
      throw std::runtime_error("key file " + f + " is inside the data directory; keep keys outside it (auth.key_dir)");
  env.store = open_account_store(cfg);
  if (keys == Keys::None) return env;
  std::array<unsigned char, 32> k;
  if (const char* hex = std::getenv("WHARF_SECRET_KEY"); hex && *hex) {
    k = auth::parse_hex_key(hex, "WHARF_SECRET_KEY");
  } else {
    bool created = false;
    k = auth::load_or_create_key_file(secret_file, create_keys, &created);
    if (created) say(spdlog::level::warn, "generated a new robot-token key at " + secret_file + " (back it up)");
  }
  bool created = false;
  std::string pem = auth::load_or_create_ec_key(token_file, create_keys, &created);
  if (created) say(spdlog::level::info, "generated a new token signing key at " + token_file);
  env.key = std::make_unique<auth::ServerKey>(k);
  env.signer = std::make_unique<auth::TokenSigner>(pem, cfg.auth.issuer);
  return env;
}

void cli_audit(meta::AccountStore& store, const std::string& action, const std::string& repo,
               const std::string& ns, nlohmann::json detail) {
  meta::AuditEvent e;
  e.time_ms = core::unix_millis();
  const char* user = std::getenv("USER");
  e.actor = std::string("cli:") + (user && *user ? user : "?");
  e.actor_kind = "cli";
  e.action = action;
  e.repo = repo;
  e.ns = !ns.empty() ? ns : repo.substr(0, repo.find('/'));
  e.detail = detail.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  store.append_audit({e});
}

void ensure_admin(meta::AccountStore& store) {
  if (store.user_count() > 0) return;
  const char* u = std::getenv("WHARF_ADMIN_USER");
  const char* p = std::getenv("WHARF_ADMIN_PASSWORD");
  std::string user = u && *u ? u : "admin";
  std::string password = p && *p ? p : auth::random_token(24);
  auth::create_user(store, user, "", password, true);
  if (p && *p)
    std::cout << "created superuser " << user << " with the password from WHARF_ADMIN_PASSWORD" << std::endl;
  else
    std::cout << "created superuser " << user << " with password " << password
              << "  (shown once: store it now; change it in the UI or with wharf user passwd)" << std::endl;
}

}  // namespace wharf::cli
