// auth/auth.h — accounts turned into decisions: who the caller is (password,
// robot token, registry JWT, refresh token, personal API token, session
// cookie — each accepted only where it belongs), what they may do with a
// repository, the Docker token service (/v2/auth), failed-login limits and
// the audit log.
//
// Rules (Quay's model):
// - Superusers hold admin everywhere. A user holds admin on every repository
//   of their own namespace; organization admins (a team with role admin) on
//   every repository of the organization; creators (and admins) may create
//   repositories there. Otherwise roles come from repository permissions
//   granted to the user, a team they are on, or the robot. Public
//   repositories are readable by everyone, anonymous callers included.
// - pull needs read; push and delete need write; `*` needs admin. A push to a
//   repository that does not exist yet is allowed to whoever may create in
//   its namespace.
// - Every token derived from a credential carries the credential's
//   generation; a changed password or regenerated robot token invalidates
//   issued registry and refresh tokens at once (checked on every request).
#pragma once

#include <boost/asio/awaitable.hpp>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_set>
#include <vector>

#include "auth/access.h"
#include "auth/audit_log.h"
#include "auth/crypto.h"
#include "auth/jwt.h"
#include "auth/login_limiter.h"
#include "auth/password_checker.h"
#include "auth/policy.h"
#include "auth/principal.h"
#include "auth/registry_tokens.h"
#include "core/config.h"
#include "http/offload.h"
#include "http/server.h"
#include "meta/account_store.h"
#include "meta/metadata_store.h"

namespace wharf::auth {

// The `auth:` section as configured (core::AuthConfig: service, issuer,
// token/refresh/session lifetimes, new_repos_public, the failed-login limits
// -- max_failed_logins within failed_login_window_seconds from one (address,
// account) pair blocks that pair for block_seconds, max_failed_logins_per_address
// from one address whatever the accounts -- and password_cache_seconds),
// plus the realm base.
struct Options : core::AuthConfig {
  std::string external_url;  // realm base; else from the request
  // Where /v2/auth's store reads and password checks run, off the I/O
  // threads; null: inline (the embedded backends).
  http::Offload* offload = nullptr;
};

class Auth : public AccessControl {
 public:
  Auth(Options o, meta::AccountStore& accounts, meta::MetadataStore& meta, const ServerKey& key,
       const TokenSigner& signer);
  ~Auth() override = default;  // the audit log writes the events still queued

  // --- AccessControl (see access.h)
  void require(const http::Request& req, std::string_view repo, std::string_view action) override;
  void prepare_push(const http::Request& req, std::string_view repo) override;
  Readable reader(const http::Request& req) override;
  Caller require_direct(const http::Request& req, std::string_view repo, std::string_view action) override;
  void audit(const http::Request& req, const Caller* caller, std::string_view action, std::string_view repo,
             const nlohmann::json& detail) override;

  // GET/POST /v2/auth.
  boost::asio::awaitable<void> handle_token(http::Exchange& ex);

  // --- building blocks for the management API
  // Verifies user:password or robot:token (per `allow_robot`), with the
  // failed-login limit for (client address, name). Throws core::Error
  // Unauthorized / TooManyRequests (with Retry-After).
  Principal login(const http::Request& req, std::string_view name, std::string_view secret, bool allow_robot);
  // The caller of a Basic header, when there is one.
  std::optional<Principal> basic(const http::Request& req, bool allow_robot);
  // A personal API token ("wharf_pat_..."); nullopt when unknown.
  std::optional<Principal> api_token(std::string_view token);
  Principal user_principal(const meta::Account& a, Credential via) const;

  meta::Role role(const Principal& p, std::string_view repo);
  // role() of each of `sorted_names`, batched (AccessPolicy::roles).
  std::vector<meta::Role> roles(const Principal& p, const std::vector<std::string>& sorted_names);
  bool can_create(const Principal& p, std::string_view ns);
  // Namespace admin: the user themself, an org admin, or a superuser.
  bool namespace_admin(const Principal& p, std::string_view ns);
  // Creates the repository's settings when missing, with the defaults and
  // grants a new repository gets. Returns true when it was created.
  // `grant_creator`: a creator who is not a namespace admin gets admin on it
  // (write for robots); false for repositories that predate accounts.
  bool create_repository(const Principal& creator, std::string_view repo, std::optional<bool> is_public = {},
                         std::string_view description = {}, bool grant_creator = true);

  // Drops the in-process note that `repo` has settings (after deleting them).
  void forget_repository(std::string_view repo);

  // Queues an audit event (audit_log.h: committed in batches every 100 ms).
  void record(const Principal& p, const http::Request* req, std::string_view action, std::string_view repo,
              const nlohmann::json& detail);
  // Commits every queued audit event now (before reading the log).
  void flush_audit();

  const Options& options() const { return opts_; }
  const ServerKey& key() const { return key_; }
  const TokenSigner& signer() const { return signer_; }
  meta::AccountStore& accounts() { return accounts_; }

 private:
  // The token response's body for a /v2/auth request (POST: its form body).
  // Blocking (store reads, password checks). Throws Error.
  std::string token_response(const http::Request& req, const std::string& body);
  // The registry token of the request, verified and its generation current; nullopt when none.
  std::optional<RegistryTokens::Verified> bearer(const http::Request& req, bool& presented, std::string& why);
  bool generation_current(const Principal& p);
  static bool token_allows(const nlohmann::json& access, std::string_view type, std::string_view name,
                           std::string_view action);
  [[noreturn]] void challenge(const http::Request& req, std::string_view scope, bool insufficient,
                              std::string_view message);
  nlohmann::json grant(const Principal& p, const std::vector<std::string>& scopes);
  Options opts_;
  meta::AccountStore& accounts_;
  meta::MetadataStore& meta_;
  const ServerKey& key_;
  const TokenSigner& signer_;

  AccessPolicy policy_{accounts_};
  RegistryTokens tokens_{signer_, opts_};
  LoginLimiter limiter_{opts_, accounts_};
  PasswordChecker passwords_{opts_};

  // State below is protected by mu_.
  std::mutex mu_;
  std::unordered_set<std::string> known_repos_;  // repositories whose settings exist (this process saw them)
  bool repository_known(std::string_view repo);

  AuditLog audit_log_{accounts_};  // last: destroyed first, writing what is still queued
};

}  // namespace wharf::auth
