#include "core/digest.h"

#include <openssl/sha.h>

#include <cstring>

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

// The low-level SHA256/SHA512 contexts rather than EVP: EVP cannot export a
// hash state, and an upload's digest state is saved with its session so any
// process can continue it (Hasher::save). Both run the same assembly.
// OpenSSL 3 deprecates these functions; this file is their only user.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

struct Hasher::Ctx {
  union {
    SHA256_CTX s256;
    SHA512_CTX s512;
  };
};

Hasher::Hasher(DigestAlgorithm a) : algo_(a), ctx_(std::make_unique<Ctx>()) {
  int ok = a == DigestAlgorithm::Sha256 ? SHA256_Init(&ctx_->s256) : SHA512_Init(&ctx_->s512);
  if (ok != 1) throw std::runtime_error("SHA init failed");
}
Hasher::~Hasher() = default;
Hasher::Hasher(Hasher&&) noexcept = default;
Hasher& Hasher::operator=(Hasher&&) noexcept = default;

void Hasher::update(const void* data, size_t n) {
  if (!n) return;
  if (algo_ == DigestAlgorithm::Sha256)
    SHA256_Update(&ctx_->s256, data, n);
  else
    SHA512_Update(&ctx_->s512, data, n);
}

Digest Hasher::finish() {
  unsigned char out[SHA512_DIGEST_LENGTH];
  unsigned len = algo_ == DigestAlgorithm::Sha256 ? SHA256_DIGEST_LENGTH : SHA512_DIGEST_LENGTH;
  if (algo_ == DigestAlgorithm::Sha256)
    SHA256_Final(out, &ctx_->s256);
  else
    SHA512_Final(out, &ctx_->s512);
  static const char* kHex = "0123456789abcdef";
  std::string hex(len * 2, '0');
  for (unsigned i = 0; i < len; ++i) {
    hex[2 * i] = kHex[out[i] >> 4];
    hex[2 * i + 1] = kHex[out[i] & 15];
  }
  return Digest(algo_, std::move(hex));
}

namespace {

// Fixed-width little-endian fields, so the format does not depend on the
// struct's layout; the pending block is raw bytes as OpenSSL keeps it.
template <class T>
void put_le(std::string& out, T v) {
  for (size_t i = 0; i < sizeof(T); ++i) out.push_back(static_cast<char>((static_cast<uint64_t>(v) >> (8 * i)) & 0xff));
}
template <class T>
bool get_le(std::string_view& in, T& v) {
  if (in.size() < sizeof(T)) return false;
  uint64_t x = 0;
  for (size_t i = 0; i < sizeof(T); ++i) x |= static_cast<uint64_t>(static_cast<unsigned char>(in[i])) << (8 * i);
  v = static_cast<T>(x);
  in.remove_prefix(sizeof(T));
  return true;
}
constexpr char kStateTag[] = "wharf-hash-1";

}  // namespace

// Format: tag, algorithm byte, h[8], Nl, Nh, the pending block (raw bytes, as
// OpenSSL keeps it), num, md_len.
std::string Hasher::save() const {
  std::string out(kStateTag);
  out.push_back(algo_ == DigestAlgorithm::Sha256 ? '2' : '5');
  auto fields = [&](const auto& c, const unsigned char* block, size_t block_size) {
    for (auto w : c.h) put_le(out, w);
    put_le(out, c.Nl);
    put_le(out, c.Nh);
    out.append(reinterpret_cast<const char*>(block), block_size);
    put_le(out, c.num);
    put_le(out, c.md_len);
  };
  if (algo_ == DigestAlgorithm::Sha256)
    fields(ctx_->s256, reinterpret_cast<const unsigned char*>(ctx_->s256.data), SHA256_CBLOCK);
  else
    fields(ctx_->s512, ctx_->s512.u.p, SHA512_CBLOCK);
  return out;
}

std::optional<Hasher> Hasher::restore(std::string_view in) {
  std::string_view tag(kStateTag);
  if (in.substr(0, tag.size()) != tag || in.size() < tag.size() + 1) return std::nullopt;
  in.remove_prefix(tag.size());
  char alg = in[0];
  in.remove_prefix(1);
  if (alg != '2' && alg != '5') return std::nullopt;
  Hasher h(alg == '2' ? DigestAlgorithm::Sha256 : DigestAlgorithm::Sha512);
  auto fields = [&](auto& c, unsigned char* block, size_t block_size, unsigned want_len) {
    for (auto& w : c.h)
      if (!get_le(in, w)) return false;
    if (!get_le(in, c.Nl) || !get_le(in, c.Nh) || in.size() < block_size) return false;
    std::memcpy(block, in.data(), block_size);
    in.remove_prefix(block_size);
    if (!get_le(in, c.num) || !get_le(in, c.md_len)) return false;
    return in.empty() && c.num < block_size && c.md_len == want_len;
  };
  bool ok = alg == '2' ? fields(h.ctx_->s256, reinterpret_cast<unsigned char*>(h.ctx_->s256.data), SHA256_CBLOCK,
                                SHA256_DIGEST_LENGTH)
                       : fields(h.ctx_->s512, h.ctx_->s512.u.p, SHA512_CBLOCK, SHA512_DIGEST_LENGTH);
  if (!ok) return std::nullopt;
  return h;
}

#pragma GCC diagnostic pop

Digest digest_of(DigestAlgorithm a, std::string_view data) {
  Hasher h(a);
  h.update(data);
  return h.finish();
}
Digest sha256_of(std::string_view data) { return digest_of(DigestAlgorithm::Sha256, data); }

}  // namespace wharf::core
