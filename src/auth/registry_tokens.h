// auth/registry_tokens.h — registry tokens (access) and refresh tokens:
// ES256 JWTs (jwt.h) whose claims name the principal and the generation of
// the credential they were issued for. Whether that generation is still
// current is the caller's to check (it reads the accounts).
//
// Owns the cache of verified access tokens (by token text, until they
// expire). Thread-safe: the cache is protected by mu_.
#pragma once

#include <cstdint>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <unordered_map>

#include "auth/jwt.h"
#include "auth/principal.h"
#include "core/config.h"

namespace wharf::auth {

class RegistryTokens {
 public:
  RegistryTokens(const TokenSigner& signer, const core::AuthConfig& cfg) : signer_(signer), cfg_(cfg) {}

  struct Verified {
    Principal who;
    nlohmann::json access;  // [{type,name,actions}]
    int64_t exp = 0;
  };
  // An unexpired access token of this service; nullopt with `why` otherwise.
  std::optional<Verified> verify_access(const std::string& token, std::string& why);
  // A refresh token's principal; nullopt with `why` otherwise.
  std::optional<Principal> verify_refresh(const std::string& token, std::string& why) const;
  // A token for `p` granting `access` (refresh: a refresh token, no access).
  std::string issue(const Principal& p, const nlohmann::json& access, bool refresh) const;

 private:
  const TokenSigner& signer_;
  const core::AuthConfig& cfg_;
  std::mutex mu_;
  std::unordered_map<std::string, Verified> cache_;  // at most 20 000 (then cleared)
};

}  // namespace wharf::auth
