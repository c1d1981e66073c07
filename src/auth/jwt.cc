#include "core/clock.h"
#include "auth/jwt.h"

#include <jwt.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>

#include <chrono>
#include <cstdlib>
#include <memory>
#include <stdexcept>

#include "auth/crypto.h"

namespace wharf::auth {

namespace {

int64_t now_s() { return core::unix_seconds(); }

struct JwtFree {
  void operator()(jwt_t* j) const { jwt_free(j); }
};

}  // namespace

TokenSigner::TokenSigner(std::string private_pem, std::string issuer)
    : private_pem_(std::move(private_pem)), issuer_(std::move(issuer)) {
  BIO* in = BIO_new_mem_buf(private_pem_.data(), static_cast<int>(private_pem_.size()));
  EVP_PKEY* key = PEM_read_bio_PrivateKey(in, nullptr, nullptr, nullptr);
  BIO_free(in);
  if (!key || EVP_PKEY_get_base_id(key) != EVP_PKEY_EC || EVP_PKEY_get_bits(key) != 256) {
    if (key) EVP_PKEY_free(key);
    throw std::runtime_error("the token signing key must be an EC P-256 private key");
  }
  BIO* out = BIO_new(BIO_s_mem());
  PEM_write_bio_PUBKEY(out, key);
  char* data = nullptr;
  long n = BIO_get_mem_data(out, &data);
  public_pem_.assign(data, static_cast<size_t>(n));
  BIO_free(out);
  unsigned char* der = nullptr;
  int dlen = i2d_PUBKEY(key, &der);
  unsigned char h[SHA256_DIGEST_LENGTH];
  SHA256(der, static_cast<size_t>(dlen), h);
  OPENSSL_free(der);
  EVP_PKEY_free(key);
  static const char* kHex = "0123456789abcdef";
  for (int i = 0; i < 12; ++i) {
    kid_ += kHex[h[i] >> 4];
    kid_ += kHex[h[i] & 15];
  }
}

std::string TokenSigner::sign(nlohmann::json claims, int64_t ttl_seconds) const {
  int64_t now = now_s();
  claims["iss"] = issuer_;
  claims["iat"] = now;
  claims["nbf"] = now - 1;
  claims["exp"] = now + ttl_seconds;
  claims["jti"] = random_b64(12);
  jwt_t* raw = nullptr;
  if (jwt_new(&raw) != 0) throw std::runtime_error("jwt_new failed");
  std::unique_ptr<jwt_t, JwtFree> j(raw);
  std::string body = claims.dump();
  if (jwt_add_grants_json(j.get(), body.c_str()) != 0 || jwt_add_header(j.get(), "kid", kid_.c_str()) != 0 ||
      jwt_set_alg(j.get(), JWT_ALG_ES256, reinterpret_cast<const unsigned char*>(private_pem_.data()),
                  static_cast<int>(private_pem_.size())) != 0)
    throw std::runtime_error("cannot build a token");
  char* s = jwt_encode_str(j.get());
  if (!s) throw std::runtime_error("cannot sign a token");
  std::string out(s);
  free(s);
  return out;
}

std::optional<nlohmann::json> TokenSigner::verify(std::string_view token, std::string_view audience,
                                                  std::string& why) const {
  // Pin the algorithm before libjwt chooses one from the header.
  auto dot = token.find('.');
  if (dot == std::string_view::npos || token.size() > 8192) {
    why = "malformed token";
    return std::nullopt;
  }
  auto header = nlohmann::json::parse(base64_decode(token.substr(0, dot), true), nullptr, false);
  if (!header.is_object() || header.value("alg", "") != "ES256") {
    why = "token algorithm is not ES256";
    return std::nullopt;
  }
  std::string t(token);
  jwt_t* raw = nullptr;
  if (jwt_decode(&raw, t.c_str(), reinterpret_cast<const unsigned char*>(public_pem_.data()),
                 static_cast<int>(public_pem_.size())) != 0 ||
      !raw) {
    if (raw) jwt_free(raw);
    why = "bad token signature";
    return std::nullopt;
  }
  std::unique_ptr<jwt_t, JwtFree> j(raw);
  if (jwt_get_alg(j.get()) != JWT_ALG_ES256) {
    why = "token algorithm is not ES256";
    return std::nullopt;
  }
  char* grants = jwt_get_grants_json(j.get(), nullptr);
  if (!grants) {
    why = "token has no claims";
    return std::nullopt;
  }
  auto claims = nlohmann::json::parse(grants, nullptr, false);
  free(grants);
  if (!claims.is_object()) {
    why = "token claims are not an object";
    return std::nullopt;
  }
  int64_t now = now_s();
  auto num = [&](const char* k) -> int64_t {
    auto it = claims.find(k);
    return it != claims.end() && it->is_number_integer() ? it->get<int64_t>() : INT64_MIN;
  };
  if (claims.value("iss", "") != issuer_) {
    why = "token issuer is not ours";
    return std::nullopt;
  }
  bool aud_ok = false;
  if (auto it = claims.find("aud"); it != claims.end()) {
    if (it->is_string()) aud_ok = it->get<std::string>() == audience;
    if (it->is_array())
      for (auto& a : *it) aud_ok = aud_ok || (a.is_string() && a.get<std::string>() == audience);
  }
  if (!aud_ok) {
    why = "token audience is not this service";
    return std::nullopt;
  }
  int64_t exp = num("exp"), nbf = num("nbf");
  if (exp == INT64_MIN || now >= exp) {
    why = "token expired";
    return std::nullopt;
  }
  if (nbf != INT64_MIN && now + 30 < nbf) {
    why = "token not valid yet";
    return std::nullopt;
  }
  return claims;
}

}  // namespace wharf::auth
