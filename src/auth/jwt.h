// auth/jwt.h — signed tokens (JWT, ES256 over P-256) through libjwt.
//
// Contract: verify() accepts only tokens whose header says ES256 — checked
// before libjwt sees the token, so `none`, HS256 signed with our public key
// and every other algorithm are refused — whose signature is ours, whose
// `iss` is ours, whose `aud` is the expected audience and that are inside
// [nbf - 30 s, exp). What the claims grant is the caller's business.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

namespace wharf::auth {

class TokenSigner {
 public:
  // `private_pem`: an EC P-256 private key. Throws when it is not one.
  TokenSigner(std::string private_pem, std::string issuer);
  // Signs `claims` after adding iss, iat, nbf, exp (now + ttl) and a random jti.
  std::string sign(nlohmann::json claims, int64_t ttl_seconds) const;
  // The verified claims, or nullopt with `why` set to a short reason.
  std::optional<nlohmann::json> verify(std::string_view token, std::string_view audience, std::string& why) const;
  const std::string& issuer() const { return issuer_; }
  const std::string& key_id() const { return kid_; }

 private:
  std::string private_pem_, public_pem_, issuer_, kid_;
};

}  // namespace wharf::auth
