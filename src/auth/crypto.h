// auth/crypto.h — the secrets of the accounts model, all through libsodium:
// argon2id password hashes, robot tokens sealed at rest (XSalsa20-Poly1305
// with the server key), keyed hashes for tokens we only need to recognise
// (personal API tokens, session ids), constant-time comparison, and random
// token generation. Also the server's key files (robot-token key, JWT key).
#pragma once

#include <array>
#include <optional>
#include <string>
#include <string_view>

namespace wharf::auth {

// Calls sodium_init once; throws when libsodium cannot start.
void crypto_init();

// argon2id (libsodium's string form, parameters embedded). OWASP's minimum
// for argon2id (19 MiB, 2 passes): a verification costs tens of milliseconds.
std::string hash_password(std::string_view password);
bool verify_password(std::string_view hash, std::string_view password);
// A hash of a random password, to spend the same time on unknown users.
const std::string& dummy_password_hash();

// `n` random bytes as [A-Z0-9] characters (Quay's robot token alphabet).
std::string random_token(size_t n);
// `n` random bytes, base64url without padding.
std::string random_b64(size_t n);

bool equal_constant_time(std::string_view a, std::string_view b);

// Base64 (standard alphabet with padding, as in Basic credentials) or
// base64url without padding (JWT segments); empty on malformed input.
std::string base64_decode(std::string_view s, bool url_safe);

// The server key: 32 bytes that seal robot tokens and key the hashes.
class ServerKey {
 public:
  explicit ServerKey(const std::array<unsigned char, 32>& key);
  // Encrypts with a random nonce: nonce || ciphertext+tag.
  std::string seal(std::string_view plaintext) const;
  std::optional<std::string> open(std::string_view sealed) const;
  // Keyed BLAKE2b of `data` (hex), with a subkey distinct from the sealing key.
  std::string keyed_hash(std::string_view data) const;

 private:
  std::array<unsigned char, 32> seal_key_{};
  std::array<unsigned char, 32> hash_key_{};
};

// Reads a 32-byte key as 64 hex characters (surrounding whitespace allowed).
// Throws with the source's name when malformed.
std::array<unsigned char, 32> parse_hex_key(std::string_view text, const std::string& source);
// Reads `path`; when it does not exist and `create` is set, writes a new
// random key there (mode 0600, directories created). Throws otherwise.
std::array<unsigned char, 32> load_or_create_key_file(const std::string& path, bool create, bool* created = nullptr);
// Reads a PEM EC P-256 private key from `path`, creating one (mode 0600) when
// it does not exist and `create` is set. Returns the PEM text.
std::string load_or_create_ec_key(const std::string& path, bool create, bool* created = nullptr);

}  // namespace wharf::auth
