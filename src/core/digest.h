// core/digest.h — content digests ("sha256:<hex>", "sha512:<hex>") and an
// incremental hasher over OpenSSL's SHA-2 whose state can be saved and restored.
//
// Contract: a `Digest` is always valid once constructed (parse() checks the
// algorithm and the exact hex length); the hex is lowercase. Hasher is not
// thread-safe; one per stream.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace wharf::core {

enum class DigestAlgorithm { Sha256, Sha512 };

class Digest {
 public:
  // Parses "algo:hex". Returns nullopt for anything the grammar or a
  // supported algorithm rejects (wrong length, uppercase hex, unknown algo).
  static std::optional<Digest> parse(std::string_view s);
  // True when `s` matches the spec's general digest grammar, even if the
  // algorithm is not one we support (callers answer UNSUPPORTED vs
  // DIGEST_INVALID with this).
  static bool grammar_ok(std::string_view s);

  DigestAlgorithm algorithm() const { return algo_; }
  std::string_view algorithm_name() const;
  const std::string& hex() const { return hex_; }
  std::string str() const;
  bool operator==(const Digest&) const = default;

 private:
  Digest(DigestAlgorithm a, std::string hex) : algo_(a), hex_(std::move(hex)) {}
  friend class Hasher;
  DigestAlgorithm algo_;
  std::string hex_;
};

class Hasher {
 public:
  explicit Hasher(DigestAlgorithm a = DigestAlgorithm::Sha256);
  ~Hasher();
  Hasher(Hasher&&) noexcept;
  Hasher& operator=(Hasher&&) noexcept;
  Hasher(const Hasher&) = delete;
  Hasher& operator=(const Hasher&) = delete;

  void update(const void* data, size_t n);
  void update(std::string_view s) { update(s.data(), s.size()); }
  // Finishes the hash. REQUIRES: called at most once.
  Digest finish();
  DigestAlgorithm algorithm() const { return algo_; }
  // The state so far as bytes, for an upload session continued by another
  // process: restore(save()) hashes on exactly as this one would. nullopt
  // when `state` is not such bytes. The format is wharf's own, the same on
  // every little- or big-endian build of one version.
  std::string save() const;
  static std::optional<Hasher> restore(std::string_view state);

 private:
  DigestAlgorithm algo_;
  struct Ctx;
  std::unique_ptr<Ctx> ctx_;
};

// One-shot convenience.
Digest sha256_of(std::string_view data);
Digest digest_of(DigestAlgorithm a, std::string_view data);
// "sha256" / "sha512" -> the algorithm; anything else: nullopt.
std::optional<DigestAlgorithm> parse_digest_algorithm(std::string_view name);

}  // namespace wharf::core
