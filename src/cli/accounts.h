// cli/accounts.h — the accounts side of a process: the account store and
// the server's two keys (robot-token sealing, registry-token signing), the
// first superuser, and the audit trail of admin commands.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "auth/crypto.h"
#include "auth/jwt.h"
#include "core/config.h"
#include "meta/account_store.h"

namespace wharf::cli {

struct AccountsEnv {
  std::unique_ptr<meta::AccountStore> store;
  std::unique_ptr<auth::ServerKey> key;
  std::unique_ptr<auth::TokenSigner> signer;
};

// Where the keys live: auth.key_dir, else $WHARF_KEY_DIR, else ~/.config/wharf.
std::string key_dir(const core::Config& cfg);

// Opens the account store and loads (or, for the server, creates) the keys.
// Keys must not live inside the data directory: whoever copies the data must
// not get the key that decrypts robot tokens with it.
// `keys`: the server creates missing keys; admin commands that need them
// (robot tokens) require the server's keys; the others load none.
enum class Keys { Create, Require, None };
AccountsEnv open_accounts(const core::Config& cfg, Keys keys);

// Admin commands leave the same audit trail as the API; the actor is the
// operating-system user that ran the command.
void cli_audit(meta::AccountStore& store, const std::string& action, const std::string& repo, const std::string& ns,
               nlohmann::json detail);

// First start: the initial superuser, its password printed once.
void ensure_admin(meta::AccountStore& store);

}  // namespace wharf::cli
