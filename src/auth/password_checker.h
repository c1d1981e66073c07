// auth/password_checker.h — argon2id password checks, bounded and cached:
// at most two run at once (19 MiB each), at most 16 wait (more get 429), and
// a successful check is remembered for password_cache_seconds under a keyed
// hash of (name, password) and the account's generation, so a client that
// signs in on every request does not pay argon2id each time.
//
// Owns the check slots and the cache of this process. Thread-safe: state
// below is protected by slot_mu_ (slots) and cache_mu_ (the cache).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

#include "core/config.h"

namespace wharf::auth {

class PasswordChecker {
 public:
  explicit PasswordChecker(const core::AuthConfig& cfg) : cfg_(cfg) {}

  // Whether `secret` matches `hash`. `cache_key`: a keyed hash of name and
  // password; a check that succeeded for it at `generation` within the cache
  // lifetime answers without argon2id. `hash` empty: no such account — the
  // same argon2id work is done against a dummy hash, and the answer is false.
  // Throws core::Error TooManyRequests when too many checks wait.
  bool check(const std::string& cache_key, int64_t generation, const std::string& hash, std::string_view secret);

 private:
  const core::AuthConfig& cfg_;
  std::mutex slot_mu_;
  std::condition_variable slot_cv_;
  int running_ = 0, waiting_ = 0;
  std::mutex cache_mu_;
  std::unordered_map<std::string, std::pair<int64_t, int64_t>> ok_;  // cache key -> (expiry, generation)
};

}  // namespace wharf::auth
