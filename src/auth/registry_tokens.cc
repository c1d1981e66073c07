#include "auth/registry_tokens.h"

#include "core/clock.h"

namespace wharf::auth {

using nlohmann::json;

std::optional<RegistryTokens::Verified> RegistryTokens::verify_access(const std::string& token, std::string& why) {
  int64_t now = core::unix_seconds();
  std::optional<Verified> out;
  {
    std::lock_guard lk(mu_);
    auto it = cache_.find(token);
    if (it != cache_.end() && it->second.exp > now) out = it->second;
  }
  if (!out) {
    auto claims = signer_.verify(token, cfg_.service, why);
    if (!claims) return std::nullopt;
    auto w = claims->value("wharf", json::object());
    if (!w.is_object() || w.value("use", "") != "access") {
      why = "not a registry token";
      return std::nullopt;
    }
    Verified ver;
    std::string kind = w.value("k", "");
    ver.who.kind = kind == "user"    ? Principal::Kind::User
                   : kind == "robot" ? Principal::Kind::Robot
                                     : Principal::Kind::Anonymous;
    ver.who.id = w.value("id", int64_t{0});
    ver.who.generation = w.value("g", int64_t{0});
    ver.who.name = claims->value("sub", "");
    ver.who.via = Credential::RegistryToken;
    ver.access = claims->value("access", json::array());
    ver.exp = claims->value("exp", int64_t{0});
    std::lock_guard lk(mu_);
    if (cache_.size() > 20000) cache_.clear();
    cache_[token] = ver;
    out = ver;
  }
  if (out->exp <= now) {
    why = "token expired";
    return std::nullopt;
  }
  return out;
}

std::optional<Principal> RegistryTokens::verify_refresh(const std::string& token, std::string& why) const {
  std::string jwt_why;
  auto claims = signer_.verify(token, cfg_.service, jwt_why);
  auto w = claims ? claims->value("wharf", json::object()) : json::object();
  if (!claims || !w.is_object() || w.value("use", "") != "refresh") {
    why = claims ? "not a refresh token" : "invalid refresh token: " + jwt_why;
    return std::nullopt;
  }
  Principal p;
  p.kind = w.value("k", "") == "robot" ? Principal::Kind::Robot : Principal::Kind::User;
  p.id = w.value("id", int64_t{0});
  p.generation = w.value("g", int64_t{0});
  p.name = claims->value("sub", "");
  p.via = Credential::RefreshToken;
  return p;
}

std::string RegistryTokens::issue(const Principal& p, const json& access, bool refresh) const {
  json claims = {{"sub", p.name},
                 {"aud", cfg_.service},
                 {"wharf", {{"k", p.kind_name()}, {"id", p.id}, {"g", p.generation}, {"use", refresh ? "refresh" : "access"}}}};
  if (!refresh) claims["access"] = access;
  return signer_.sign(claims, refresh ? cfg_.refresh_ttl_seconds : cfg_.token_ttl_seconds);
}

}  // namespace wharf::auth
