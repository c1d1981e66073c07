#include "auth/crypto.h"

#include <fcntl.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace wharf::auth {

namespace {
constexpr unsigned long long kOps = 2;
constexpr size_t kMem = 19u << 20;

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// Writes `data` to `path` with mode 0600, creating parent directories;
// fails when the file appeared meanwhile (two processes starting at once).
bool write_private(const std::string& path, std::string_view data) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    if (errno == EEXIST) return false;
    throw std::runtime_error("cannot create key file " + path + ": " + std::strerror(errno));
  }
  bool ok = ::write(fd, data.data(), data.size()) == static_cast<ssize_t>(data.size()) && ::fsync(fd) == 0;
  ::close(fd);
  if (!ok) throw std::runtime_error("cannot write key file " + path);
  return true;
}
}  // namespace

void crypto_init() {
  if (sodium_init() < 0) throw std::runtime_error("libsodium failed to initialise");
}

std::string hash_password(std::string_view password) {
  char out[crypto_pwhash_STRBYTES];
  if (crypto_pwhash_str_alg(out, password.data(), password.size(), kOps, kMem, crypto_pwhash_ALG_ARGON2ID13) != 0)
    throw std::runtime_error("out of memory hashing a password");
  return out;
}

bool verify_password(std::string_view hash, std::string_view password) {
  if (hash.empty() || hash.size() >= crypto_pwhash_STRBYTES) return false;
  char h[crypto_pwhash_STRBYTES] = {};
  std::copy(hash.begin(), hash.end(), h);
  return crypto_pwhash_str_verify(h, password.data(), password.size()) == 0;
}

const std::string& dummy_password_hash() {
  static const std::string h = hash_password(random_b64(24));
  return h;
}

std::string random_token(size_t n) {
  static const char* kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  std::string out;
  out.reserve(n);
  for (size_t i = 0; i < n; ++i) out += kAlphabet[randombytes_uniform(36)];
  return out;
}

std::string random_b64(size_t n) {
  std::string raw(n, '\0');
  randombytes_buf(raw.data(), n);
  std::string out(sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_URLSAFE_NO_PADDING), '\0');
  sodium_bin2base64(out.data(), out.size(), reinterpret_cast<const unsigned char*>(raw.data()), n,
                    sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  out.resize(std::strlen(out.c_str()));
  return out;
}

std::string base64_decode(std::string_view s, bool url_safe) {
  std::string out(s.size(), '\0');
  size_t len = 0;
  int variant = url_safe ? sodium_base64_VARIANT_URLSAFE_NO_PADDING : sodium_base64_VARIANT_ORIGINAL;
  if (sodium_base642bin(reinterpret_cast<unsigned char*>(out.data()), out.size(), s.data(), s.size(), nullptr, &len,
                        nullptr, variant) != 0)
    return {};
  out.resize(len);
  return out;
}

bool equal_constant_time(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  return a.empty() || sodium_memcmp(a.data(), b.data(), a.size()) == 0;
}

ServerKey::ServerKey(const std::array<unsigned char, 32>& key) {
  crypto_kdf_derive_from_key(seal_key_.data(), seal_key_.size(), 1, "wharfkey", key.data());
  crypto_kdf_derive_from_key(hash_key_.data(), hash_key_.size(), 2, "wharfkey", key.data());
}

std::string ServerKey::seal(std::string_view plaintext) const {
  std::string out(crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES + plaintext.size(), '\0');
  auto* p = reinterpret_cast<unsigned char*>(out.data());
  randombytes_buf(p, crypto_secretbox_NONCEBYTES);
  crypto_secretbox_easy(p + crypto_secretbox_NONCEBYTES, reinterpret_cast<const unsigned char*>(plaintext.data()),
                        plaintext.size(), p, seal_key_.data());
  return out;
}

std::optional<std::string> ServerKey::open(std::string_view sealed) const {
  if (sealed.size() < crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES) return std::nullopt;
  auto* p = reinterpret_cast<const unsigned char*>(sealed.data());
  std::string out(sealed.size() - crypto_secretbox_NONCEBYTES - crypto_secretbox_MACBYTES, '\0');
  if (crypto_secretbox_open_easy(reinterpret_cast<unsigned char*>(out.data()), p + crypto_secretbox_NONCEBYTES,
                                 sealed.size() - crypto_secretbox_NONCEBYTES, p, seal_key_.data()) != 0)
    return std::nullopt;
  return out;
}

std::string ServerKey::keyed_hash(std::string_view data) const {
  unsigned char h[32];
  crypto_generichash(h, sizeof h, reinterpret_cast<const unsigned char*>(data.data()), data.size(), hash_key_.data(),
                     hash_key_.size());
  char hex[65];
  sodium_bin2hex(hex, sizeof hex, h, sizeof h);
  return hex;
}

std::array<unsigned char, 32> parse_hex_key(std::string_view text, const std::string& source) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.remove_suffix(1);
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) text.remove_prefix(1);
  std::array<unsigned char, 32> key{};
  size_t len = 0;
  if (text.size() != 64 ||
      sodium_hex2bin(key.data(), key.size(), text.data(), text.size(), nullptr, &len, nullptr) != 0 || len != 32)
    throw std::runtime_error(source + " must hold a 32-byte key as 64 hex characters (openssl rand -hex 32)");
  return key;
}

std::array<unsigned char, 32> load_or_create_key_file(const std::string& path, bool create, bool* created) {
  if (created) *created = false;
  if (!std::filesystem::exists(path)) {
    if (!create) throw std::runtime_error("key file " + path + " does not exist: start wharf serve once with the same auth.key_dir (or WHARF_KEY_DIR), or point auth.*_file at the keys");
    std::array<unsigned char, 32> k;
    randombytes_buf(k.data(), k.size());
    char hex[65];
    sodium_bin2hex(hex, sizeof hex, k.data(), k.size());
    if (write_private(path, std::string(hex) + "\n")) {
      if (created) *created = true;
      return k;
    }
  }
  return parse_hex_key(read_file(path), path);
}

std::string load_or_create_ec_key(const std::string& path, bool create, bool* created) {
  if (created) *created = false;
  if (!std::filesystem::exists(path)) {
    if (!create) throw std::runtime_error("key file " + path + " does not exist: start wharf serve once with the same auth.key_dir (or WHARF_KEY_DIR), or point auth.*_file at the keys");
    EVP_PKEY* key = EVP_EC_gen("P-256");
    if (!key) throw std::runtime_error("cannot generate an EC key");
    BIO* bio = BIO_new(BIO_s_mem());
    PEM_write_bio_PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr);
    char* data = nullptr;
    long n = BIO_get_mem_data(bio, &data);
    std::string pem(data, static_cast<size_t>(n));
    BIO_free(bio);
    EVP_PKEY_free(key);
    if (write_private(path, pem)) {
      if (created) *created = true;
      return pem;
    }
  }
  std::string pem = read_file(path);
  if (pem.find("PRIVATE KEY") == std::string::npos)
    throw std::runtime_error(path + " is not a PEM private key (expected an EC P-256 key)");
  return pem;
}

}  // namespace wharf::auth
