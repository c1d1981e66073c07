#include "core/digest.h"

#include <openssl/evp.h>

#include <stdexcept>

namespace wharf::core {

namespace {
bool is_lower_hex(std::string_view s) {
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}
bool alnum_lower(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
}  // namespace

bool Digest::grammar_ok(std::string_view s) {
  // algorithm ::= component (separator component)*; component ::= [a-z0-9]+;
  // separator ::= [+._-]; encoded ::= [a-zA-Z0-9=_-]+
  auto colon = s.find(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 >= s.size()) return false;
  std::string_view algo = s.substr(0, colon), enc = s.substr(colon + 1);
  bool prev_sep = true;
  for (char c : algo) {
    if (alnum_lower(c)) {
      prev_sep = false;
    } else if (c == '+' || c == '.' || c == '_' || c == '-') {
      if (prev_sep) return false;
      prev_sep = true;
    } else {
      return false;
    }
  }
  if (prev_sep) return false;
  for (char c : enc) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '=' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

std::optional<Digest> Digest::parse(std::string_view s) {
  if (s.starts_with("sha256:")) {
    auto hex = s.substr(7);
    if (hex.size() == 64 && is_lower_hex(hex)) return Digest(DigestAlgorithm::Sha256, std::string(hex));
  } else if (s.starts_with("sha512:")) {
    auto hex = s.substr(7);
    if (hex.size() == 128 && is_lower_hex(hex)) return Digest(DigestAlgorithm::Sha512, std::string(hex));
  }
  return std::nullopt;
}

std::optional<DigestAlgorithm> parse_digest_algorithm(std::string_view name) {
  if (name == "sha256") return DigestAlgorithm::Sha256;
  if (name == "sha512") return DigestAlgorithm::Sha512;
  return std::nullopt;
}

std::string_view Digest::algorithm_name() const {
  return algo_ == DigestAlgorithm::Sha256 ? "sha256" : "sha512";
}

std::string Digest::str() const {
  std::string out(algorithm_name());
  out += ':';
  out += hex_;
  return out;
}

struct Hasher::Ctx {
  EVP_MD_CTX* md = nullptr;
  ~Ctx() { EVP_MD_CTX_free(md); }
};

Hasher::Hasher(DigestAlgorithm a) : algo_(a), ctx_(std::make_unique<Ctx>()) {
  ctx_->md = EVP_MD_CTX_new();
  if (!ctx_->md || EVP_DigestInit_ex(ctx_->md, a == DigestAlgorithm::Sha256 ? EVP_sha256() : EVP_sha512(),
                                     nullptr) != 1)
    throw std::runtime_error("EVP_DigestInit_ex failed");
}
Hasher::~Hasher() = default;
Hasher::Hasher(Hasher&&) noexcept = default;
Hasher& Hasher::operator=(Hasher&&) noexcept = default;

void Hasher::update(const void* data, size_t n) {
  if (n) EVP_DigestUpdate(ctx_->md, data, n);
}

Digest Hasher::finish() {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx_->md, out, &len);
  static const char* kHex = "0123456789abcdef";
  std::string hex(len * 2, '0');
  for (unsigned i = 0; i < len; ++i) {
    hex[2 * i] = kHex[out[i] >> 4];
    hex[2 * i + 1] = kHex[out[i] & 15];
  }
  return Digest(algo_, std::move(hex));
}

Digest digest_of(DigestAlgorithm a, std::string_view data) {
  Hasher h(a);
  h.update(data);
  return h.finish();
}
Digest sha256_of(std::string_view data) { return digest_of(DigestAlgorithm::Sha256, data); }

}  // namespace wharf::core
